//! Against a small scripted SMTP server on 127.0.0.1:0 (the end-to-end tests use aiosmtpd).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use ward_core::notify::{UserNotice, UserNotifier};
use zeroize::Zeroizing;

use super::{MailError, SmtpNotifier, SmtpSecurity, SmtpSettings, notice_html, notice_text};

const REPORT_URL: &str = "https://ward.example.org/r/abc123";

/// What the scripted server received in one session.
#[derive(Debug, Default)]
struct Received {
    commands: Vec<String>,
    rcpt_to: Vec<String>,
    data: String,
}

#[derive(Clone, Copy)]
enum Script {
    Accept,
    RejectRecipients,
}

async fn bind_local() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Serves one SMTP session and returns what it received.
fn serve_one(listener: TcpListener, script: Script) -> JoinHandle<Received> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut received = Received::default();
        write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            received.commands.push(line.clone());
            let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                b"250 fake\r\n"
            } else if upper.starts_with("RCPT TO:") {
                if matches!(script, Script::RejectRecipients) {
                    b"550 5.1.1 no such user\r\n"
                } else {
                    received
                        .rcpt_to
                        .push(line["RCPT TO:".len()..].trim().to_owned());
                    b"250 OK\r\n"
                }
            } else if upper == "DATA" {
                write.write_all(b"354 go ahead\r\n").await.unwrap();
                while let Ok(Some(data_line)) = lines.next_line().await {
                    if data_line == "." {
                        break;
                    }
                    received.data.push_str(&data_line);
                    received.data.push('\n');
                }
                b"250 queued\r\n"
            } else if upper == "QUIT" {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else if upper.starts_with("MAIL FROM:") || upper == "RSET" || upper == "NOOP" {
                b"250 OK\r\n"
            } else {
                b"502 not implemented\r\n"
            };
            write.write_all(reply).await.unwrap();
        }
        received
    })
}

/// The text/html part of a received message, quoted-printable decoded when it was encoded so.
fn html_part(data: &str) -> String {
    let start = data
        .find("Content-Type: text/html")
        .expect("no text/html part");
    let part = &data[start..];
    let (headers, rest) = part.split_once("\n\n").expect("no body in the html part");
    let body = &rest[..rest.find("\n--").unwrap_or(rest.len())];
    if !headers.contains("Content-Transfer-Encoding: quoted-printable") {
        return body.to_owned();
    }
    let joined = body.replace("=\n", "");
    let mut decoded = Vec::new();
    let mut bytes = joined.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'=' {
            let hex = [bytes.next().unwrap(), bytes.next().unwrap()];
            decoded.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
        } else {
            decoded.push(byte);
        }
    }
    String::from_utf8(decoded).unwrap()
}

fn settings(port: u16) -> SmtpSettings {
    let mut settings = SmtpSettings::new(
        "127.0.0.1",
        SmtpSecurity::None,
        "Ward <ward@example.org>".parse().unwrap(),
    );
    settings.port = Some(port);
    settings.timeout = Duration::from_secs(5);
    settings
}

fn notice(email: Option<&str>, report_url: Option<&str>) -> UserNotice {
    UserNotice {
        org_id: "org-1".into(),
        user_id: "user-1".into(),
        username: "alice".into(),
        email: email.map(str::to_owned),
        action: "passkey.add".into(),
        subject: "A passkey was added to your account".into(),
        body: "A passkey named \"Laptop\" was added on 2026-12-01 at 10:00 UTC.".into(),
        report_url: report_url.map(str::to_owned),
        organisation: "Example & Co".into(),
    }
}

#[tokio::test]
async fn send_mail_delivers_a_plain_text_message() {
    let (listener, port) = bind_local().await;
    let server = serve_one(listener, Script::Accept);
    let mailer = SmtpNotifier::new(settings(port)).unwrap();

    mailer
        .send_mail(
            "bob@example.org",
            "Your sign-in code",
            "Your code is 123456.",
        )
        .await
        .unwrap();

    let received = server.await.unwrap();
    assert_eq!(received.rcpt_to, ["<bob@example.org>"]);
    assert!(
        received
            .commands
            .iter()
            .any(|c| c == "MAIL FROM:<ward@example.org>"),
        "{received:?}"
    );
    assert!(
        received.data.contains("Subject: Your sign-in code\n"),
        "{}",
        received.data
    );
    assert!(
        received.data.contains("From: Ward <ward@example.org>\n"),
        "{}",
        received.data
    );
    assert!(
        received
            .data
            .contains("Content-Type: text/plain; charset=utf-8\n"),
        "{}",
        received.data
    );
    assert!(
        received.data.contains("Your code is 123456."),
        "{}",
        received.data
    );
}

#[tokio::test]
async fn notify_sends_text_and_html_with_the_report_link() {
    let (listener, port) = bind_local().await;
    let server = serve_one(listener, Script::Accept);
    let notifier = SmtpNotifier::new(settings(port)).unwrap();

    notifier
        .notify(&notice(Some("alice@example.org"), Some(REPORT_URL)))
        .await;

    let received = server.await.unwrap();
    assert_eq!(received.rcpt_to, ["<alice@example.org>"]);
    let data = &received.data;
    assert!(
        data.contains("Subject: A passkey was added to your account\n"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(
        data.contains("Content-Type: text/plain; charset=utf-8"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: text/html; charset=utf-8"),
        "{data}"
    );
    assert!(
        data.contains(&format!("This wasn't me: {REPORT_URL}")),
        "{data}"
    );
    let html = html_part(data);
    assert!(
        html.contains(&format!("<a href=\"{REPORT_URL}\">")),
        "{html}"
    );
    assert!(html.contains("<p>Hello alice,</p>"), "{html}");
}

#[tokio::test]
async fn notify_skips_a_user_without_an_address() {
    let (listener, port) = bind_local().await;
    let notifier = SmtpNotifier::new(settings(port)).unwrap();

    notifier.notify(&notice(None, Some(REPORT_URL))).await;
    notifier.notify(&notice(Some("  "), Some(REPORT_URL))).await;

    let connection = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(
        connection.is_err(),
        "the notifier connected although there was no address"
    );
}

#[tokio::test]
async fn send_mail_returns_the_servers_refusal_and_notify_swallows_it() {
    let (listener, port) = bind_local().await;
    let server = serve_one(listener, Script::RejectRecipients);
    let mailer = SmtpNotifier::new(settings(port)).unwrap();

    let error = mailer
        .send_mail("nobody@example.org", "Code", "123456")
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Smtp(_)), "{error:?}");
    assert!(error.to_string().contains("no such user"), "{error}");
    assert!(server.await.unwrap().data.is_empty());

    // notify() only logs the same failure: the change it reports has already happened.
    let (listener, port) = bind_local().await;
    let server = serve_one(listener, Script::RejectRecipients);
    SmtpNotifier::new(settings(port))
        .unwrap()
        .notify(&notice(Some("nobody@example.org"), Some(REPORT_URL)))
        .await;
    assert!(server.await.unwrap().data.is_empty());
}

#[tokio::test]
async fn send_mail_rejects_an_invalid_address_without_connecting() {
    let (listener, port) = bind_local().await;
    let mailer = SmtpNotifier::new(settings(port)).unwrap();

    let error = mailer
        .send_mail("not an address", "Code", "123456")
        .await
        .unwrap_err();

    assert!(matches!(error, MailError::InvalidRecipient(_)), "{error:?}");
    let connection = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(connection.is_err(), "connected for an invalid address");
}

#[tokio::test]
async fn send_mail_gives_up_after_the_timeout() {
    // Accepts the connection but never greets.
    let (listener, port) = bind_local().await;
    let silent = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(stream);
    });
    let mut settings = settings(port);
    settings.timeout = Duration::from_millis(300);
    let mailer = SmtpNotifier::new(settings).unwrap();

    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        mailer.send_mail("bob@example.org", "Code", "123456"),
    )
    .await
    .expect("the SMTP timeout did not apply");

    assert!(matches!(outcome, Err(MailError::Timeout(_))), "{outcome:?}");
    silent.abort();
}

#[test]
fn text_part_greets_quotes_the_body_and_labels_the_report_link() {
    let text = notice_text(&notice(Some("alice@example.org"), Some(REPORT_URL)));

    assert_eq!(
        text,
        "Hello alice,\n\
         \n\
         this is a message from Example & Co about your account.\n\
         \n\
         A passkey named \"Laptop\" was added on 2026-12-01 at 10:00 UTC.\n\
         \n\
         This wasn't me: https://ward.example.org/r/abc123\n\
         \n\
         If you did not do this, open the link above. It blocks further changes to\n\
         your sign-in methods and alerts your administrators.\n\
         \n\
         -- \n\
         Example & Co\n"
    );
    assert!(text.lines().all(|line| line.len() <= 78), "{text}");
}

#[test]
fn text_part_has_no_report_line_without_a_link() {
    let text = notice_text(&notice(Some("alice@example.org"), None));

    assert!(!text.contains("wasn't me"), "{text}");
    assert!(
        text.contains("A passkey named \"Laptop\" was added"),
        "{text}"
    );
}

#[test]
fn html_part_escapes_every_field() {
    let mut notice = notice(
        Some("alice@example.org"),
        Some("https://x.example/r?a=1&b=\"2\""),
    );
    notice.username = "<script>alert(1)</script>".into();
    notice.body = "first <b>line</b>\nsecond\n\nnext paragraph".into();

    let html = notice_html(&notice);

    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;,"),
        "{html}"
    );
    assert!(
        html.contains("<p>first &lt;b&gt;line&lt;/b&gt;<br>\nsecond</p>\n<p>next paragraph</p>"),
        "{html}"
    );
    assert!(html.contains("Example &amp; Co"), "{html}");
    assert!(
        html.contains("<a href=\"https://x.example/r?a=1&amp;b=&quot;2&quot;\">"),
        "{html}"
    );
    assert!(
        html.contains("<strong>This wasn&#39;t me:</strong>"),
        "{html}"
    );
}

#[test]
fn settings_debug_redacts_the_password() {
    let mut settings = settings(2525);
    settings.username = Some("ward".into());
    settings.password = Some(Zeroizing::new("hunter2-secret".into()));

    let debug = format!("{settings:?}");

    assert!(!debug.contains("hunter2-secret"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    let notifier = format!("{:?}", SmtpNotifier::new(settings).unwrap());
    assert!(!notifier.contains("hunter2-secret"), "{notifier}");
}

#[test]
fn security_modes_have_their_standard_ports_and_config_names() {
    let mut settings = settings(2525);
    assert_eq!(settings.effective_port(), 2525);
    settings.port = None;
    assert_eq!(settings.effective_port(), 25);
    assert_eq!(SmtpSecurity::Tls.default_port(), 465);
    assert_eq!(SmtpSecurity::StartTls.default_port(), 587);

    let parsed: Vec<SmtpSecurity> = serde_json::from_str(r#"["tls", "starttls", "none"]"#).unwrap();
    assert_eq!(
        parsed,
        [
            SmtpSecurity::Tls,
            SmtpSecurity::StartTls,
            SmtpSecurity::None
        ]
    );
    assert!(serde_json::from_str::<SmtpSecurity>(r#""ssl""#).is_err());
}
