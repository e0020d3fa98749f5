//! One connection's request loop: closed (back to back) or open (on a fixed schedule).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use tokio::time::{Instant, sleep_until, timeout};
use ward_core::clock::{Clock, SystemClock};

use super::Plan;
use super::pool::{Job, Mixer};
use super::stats::{Outcome, Stats, Transport, classify};
use super::target::Sender;
use crate::users;

/// Pause after a failed connection attempt, so a dead server is not hammered in a hot loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// The tallies of one worker: warm-up and measured period.
#[derive(Debug)]
pub struct WorkerStats {
    pub warmup: Stats,
    pub measured: Stats,
}

/// A connection and its request loop.
#[derive(Debug)]
pub struct Worker {
    plan: Arc<Plan>,
    id: u32,
    conn: Option<Sender>,
    mixer: Mixer,
    stats: WorkerStats,
}

impl Worker {
    /// A worker starting on an open connection.
    pub fn new(plan: Arc<Plan>, id: u32, conn: Sender) -> anyhow::Result<Self> {
        let phase = f64::from(id) / f64::from(plan.connections.max(1));
        let mixer = Mixer::new(plan.wrong_ratio, phase);
        Ok(Self {
            plan,
            id,
            conn: Some(conn),
            mixer,
            stats: WorkerStats {
                warmup: Stats::new()?,
                measured: Stats::new()?,
            },
        })
    }

    /// Runs until the end of the measured period; the request in flight then may run on for
    /// at most the request timeout.
    pub async fn run(mut self) -> anyhow::Result<WorkerStats> {
        match self.plan.rate {
            None => self.closed_loop().await?,
            Some(rate) => self.open_loop(rate).await?,
        }
        Ok(self.stats)
    }

    /// Sends requests back to back; latency is each request's own round trip.
    async fn closed_loop(&mut self) -> anyhow::Result<()> {
        loop {
            let started = Instant::now();
            if started >= self.plan.end {
                return Ok(());
            }
            let Some(job) = self.next_job() else {
                self.phase(started).exhausted += 1;
                sleep_until(next_step(self.plan.end)).await;
                if started < self.plan.measure_from && Instant::now() >= self.plan.measure_from {
                    // The wait ran into the measured period: it counts there too.
                    self.stats.measured.exhausted += 1;
                }
                continue;
            };
            let outcome = self.exchange(job).await?;
            let pause = matches!(outcome, Outcome::Transport(Transport::Connect));
            self.phase(started).record(outcome, started.elapsed());
            if pause {
                sleep_until((Instant::now() + RECONNECT_PAUSE).min(self.plan.end)).await;
            }
        }
    }

    /// Sends this worker's share of `rate` requests per second at scheduled times, staggered
    /// across workers.
    ///
    /// A request whose connection is still busy at its scheduled time is sent as soon as the
    /// connection frees up, and its latency counts from the scheduled time: the wait is the
    /// server's doing (avoiding coordinated omission). A request sent on time counts from the
    /// moment the worker woke to send it, so the timer's own granularity (about 1 ms) is not
    /// charged to the server.
    async fn open_loop(&mut self, rate: f64) -> anyhow::Result<()> {
        let interval = f64::from(self.plan.connections) / rate;
        let offset = f64::from(self.id) / rate;
        let mut slot: u64 = 0;
        loop {
            let scheduled =
                self.plan.start + Duration::from_secs_f64(offset + slot as f64 * interval);
            if scheduled >= self.plan.end {
                return Ok(());
            }
            let now = Instant::now();
            if now >= self.plan.end {
                // Behind schedule when the run ended: these requests were never sent.
                let total = ((self.plan.end - self.plan.start).as_secs_f64() - offset) / interval;
                let unsent = (total.ceil() as u64).saturating_sub(slot);
                self.phase(scheduled).unsent_backlog += unsent;
                return Ok(());
            }
            slot += 1;
            let origin = if now < scheduled {
                sleep_until(scheduled).await;
                Instant::now()
            } else {
                self.phase(scheduled).late_sends += 1;
                scheduled
            };
            let Some(job) = self.next_job() else {
                self.phase(scheduled).exhausted += 1;
                continue;
            };
            let outcome = self.exchange(job).await?;
            self.phase(scheduled).record(outcome, origin.elapsed());
        }
    }

    fn phase(&mut self, at: Instant) -> &mut Stats {
        if at < self.plan.measure_from {
            &mut self.stats.warmup
        } else {
            &mut self.stats.measured
        }
    }

    /// The next request: a wrong code when the mix says so, else a user not yet used in this
    /// step (`None` when there is none).
    fn next_job(&mut self) -> Option<Job> {
        if self.mixer.next_is_wrong()
            && let Some(user) = self.plan.pool.wrong()
        {
            return Some(Job::Wrong(user));
        }
        let step = users::step_at(SystemClock.now().timestamp());
        self.plan.pool.valid(step).map(Job::Valid)
    }

    /// Sends one request and reads its response, (re)connecting first if needed. `Err` only for
    /// a failure of the harness itself.
    async fn exchange(&mut self, job: Job) -> anyhow::Result<Outcome> {
        let request = self.plan.signer.request(job, SystemClock.now())?;
        let limit = self.plan.timeout;
        if self.conn.as_ref().is_none_or(Sender::is_closed) {
            self.conn = None;
            match timeout(limit, self.plan.target.connect()).await {
                Ok(Ok(sender)) => self.conn = Some(sender),
                Ok(Err(_)) | Err(_) => return Ok(Outcome::Transport(Transport::Connect)),
            }
        }
        let Some(sender) = self.conn.as_mut() else {
            return Ok(Outcome::Transport(Transport::Connect));
        };
        let response = timeout(limit, async {
            sender.ready().await.map_err(|_| Transport::Send)?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|_| Transport::Send)?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|_| Transport::Body)?;
            Ok::<_, Transport>((parts.status, body.to_bytes()))
        })
        .await;
        match response {
            Ok(Ok((status, body))) => Ok(classify(job, status, &body)),
            Ok(Err(kind)) => {
                self.conn = None;
                Ok(Outcome::Transport(kind))
            }
            Err(_) => {
                // The connection still carries the late response: drop it.
                self.conn = None;
                Ok(Outcome::Transport(Transport::Timeout))
            }
        }
    }
}

/// The start of the next TOTP step, or `end` if that comes first.
fn next_step(end: Instant) -> Instant {
    let now_ms = SystemClock.now().timestamp_millis();
    let step_ms = users::STEP_SECS as i64 * 1000;
    let wait_ms = step_ms - now_ms.rem_euclid(step_ms);
    (Instant::now() + Duration::from_millis(wait_ms as u64)).min(end)
}
