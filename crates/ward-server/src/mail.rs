//! E-mail over SMTP: user notices (a factor added, a sign-in, ...) and, for the flows that need
//! them, plain messages such as one-time codes.
//!
//! [`SmtpNotifier`] is the [`UserNotifier`] used when `[smtp]` is configured; without it the
//! server falls back to [`ward_core::notify::LogNotifier`]. Transport security is rustls with the
//! operating system's trust store (implicit TLS or STARTTLS); plain SMTP exists for a relay on the
//! same host and for tests.
//!
//! # Security
//! A notice's `report_url` is a bearer token and a message body may carry a one-time code, so
//! neither is ever logged: logs name the user, the action and the outcome only.

use std::fmt::{self, Write as _};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use ward_core::notify::{UserNotice, UserNotifier};
use zeroize::Zeroizing;

/// How long one SMTP exchange may take, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the mail server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// TLS from the first byte ("SMTPS"), port 465 by default.
    Tls,
    /// Plain connection upgraded with STARTTLS, which is required; port 587 by default.
    #[serde(rename = "starttls")]
    StartTls,
    /// No encryption at all, port 25 by default: only for a relay on the same host, or tests.
    None,
}

impl SmtpSecurity {
    /// The port used when none is configured.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tls => 465,
            Self::StartTls => 587,
            Self::None => 25,
        }
    }
}

/// Where and how to send mail.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The mail server's host name (checked against its certificate with TLS or STARTTLS).
    pub host: String,
    /// Overrides [`SmtpSecurity::default_port`].
    pub port: Option<u16>,
    pub security: SmtpSecurity,
    /// Authenticates (PLAIN or LOGIN) when set together with `password`.
    pub username: Option<String>,
    pub password: Option<Zeroizing<String>>,
    /// The sender, e.g. `Ward <ward@example.org>`.
    pub from: Mailbox,
    pub timeout: Duration,
}

impl SmtpSettings {
    /// Settings without credentials, on the security mode's default port, with the default timeout.
    pub fn new(host: impl Into<String>, security: SmtpSecurity, from: Mailbox) -> Self {
        Self {
            host: host.into(),
            port: None,
            security,
            username: None,
            password: None,
            from,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The port actually used.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.security.default_port())
    }
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient is not a valid e-mail address.
    #[error("invalid recipient address: {0}")]
    InvalidRecipient(#[source] lettre::address::AddressError),
    /// The message could not be assembled.
    #[error("message could not be built: {0}")]
    Build(#[from] lettre::error::Error),
    /// The mail server could not be reached or refused the message.
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The whole exchange took longer than the configured timeout.
    #[error("SMTP delivery timed out after {0:?}")]
    Timeout(Duration),
}

/// Sends mail through one SMTP server; also the [`UserNotifier`] for e-mail notices.
#[derive(Clone)]
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
    security: SmtpSecurity,
    timeout: Duration,
}

impl SmtpNotifier {
    /// A sender for `settings`. Connects lazily: nothing is checked against the server here.
    pub fn new(settings: SmtpSettings) -> Result<Self, MailError> {
        let port = settings.effective_port();
        let mut builder = transport_builder(&settings.host, settings.security)?
            .port(port)
            .timeout(Some(settings.timeout));
        if let (Some(username), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                password.as_str().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from: settings.from,
            host: settings.host,
            port,
            security: settings.security,
            timeout: settings.timeout,
        })
    }

    /// Sends one plain-text message to `to`, and says why when it could not.
    pub async fn send_mail(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let message = self
            .message_to(to, subject)?
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())?;
        self.send(message).await
    }

    async fn send_notice(&self, to: &str, notice: &UserNotice) -> Result<(), MailError> {
        let text = notice_text(notice);
        let html = notice_html(notice);
        let message = self
            .message_to(to, &notice.subject)?
            .multipart(MultiPart::alternative_plain_html(text, html))?;
        self.send(message).await
    }

    /// lettre's own timeout covers connecting only; a server that stalls later would hold the
    /// task forever, so the whole exchange is bounded here.
    async fn send(&self, message: Message) -> Result<(), MailError> {
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(sent) => sent.map(|_| ()).map_err(MailError::from),
            Err(_) => Err(MailError::Timeout(self.timeout)),
        }
    }

    fn message_to(
        &self,
        to: &str,
        subject: &str,
    ) -> Result<lettre::message::MessageBuilder, MailError> {
        let address: Address = to.trim().parse().map_err(MailError::InvalidRecipient)?;
        Ok(Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, address))
            .subject(subject))
    }
}

fn transport_builder(
    host: &str,
    security: SmtpSecurity,
) -> Result<AsyncSmtpTransportBuilder, MailError> {
    Ok(match security {
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
        SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
    })
}

impl fmt::Debug for SmtpNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpNotifier")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ward_core::notify::Mailer for SmtpNotifier {
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        self.send_mail(to, subject, body)
            .await
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl UserNotifier for SmtpNotifier {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn notify(&self, notice: &UserNotice) {
        let Some(to) = notice.email.as_deref().filter(|to| !to.trim().is_empty()) else {
            tracing::debug!(
                user_id = %notice.user_id,
                action = %notice.action,
                "user has no e-mail address; notice not sent"
            );
            return;
        };
        match self.send_notice(to, notice).await {
            Ok(()) => tracing::info!(
                user_id = %notice.user_id,
                action = %notice.action,
                "user notice e-mailed"
            ),
            // The error names the address or the server's reply, never the body or the link.
            Err(error) => tracing::error!(
                user_id = %notice.user_id,
                action = %notice.action,
                smtp_host = %self.host,
                %error,
                "user notice could not be e-mailed"
            ),
        }
    }
}

/// The label in front of the report link, in both the text and the HTML part.
pub const REPORT_LABEL: &str = "This wasn't me";

/// The plain-text part: greeting, the notice's body, the report link, the organisation.
///
/// Our own lines stay under 75 characters so that a short ASCII notice goes out as 7bit text,
/// readable as it is.
pub fn notice_text(notice: &UserNotice) -> String {
    let mut text = format!(
        "Hello {},\n\nthis is a message from {} about your account.\n\n{}\n",
        notice.username,
        notice.organisation,
        notice.body.trim_end()
    );
    if let Some(url) = &notice.report_url {
        let _ = write!(
            text,
            "\n{REPORT_LABEL}: {url}\n\n\
             If you did not do this, open the link above. It blocks further changes to\n\
             your sign-in methods and alerts your administrators.\n"
        );
    }
    let _ = write!(text, "\n-- \n{}\n", notice.organisation);
    text
}

/// The HTML alternative: the same words, escaped, with the report link as a link.
pub fn notice_html(notice: &UserNotice) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html><body>\n<p>Hello {},</p>\n\
         <p>this is a message from {} about your account.</p>\n",
        escape_html(&notice.username),
        escape_html(&notice.organisation),
    );
    for paragraph in notice.body.trim_end().split("\n\n") {
        let _ = writeln!(
            html,
            "<p>{}</p>",
            escape_html(paragraph).replace('\n', "<br>\n")
        );
    }
    if let Some(url) = &notice.report_url {
        let url = escape_html(url);
        let _ = write!(
            html,
            "<p><strong>{label}:</strong>\n<a href=\"{url}\">\n{url}</a></p>\n\
             <p>If you did not do this, open the link above. It blocks further changes\n\
             to your sign-in methods and alerts your administrators.</p>\n",
            label = escape_html(REPORT_LABEL),
        );
    }
    let _ = write!(
        html,
        "<p>{}</p>\n</body></html>\n",
        escape_html(&notice.organisation)
    );
    html
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
