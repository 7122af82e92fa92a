//! The server a handle talks to: its URL (checked, and redacted for
//! messages), the redis-rs client built from it, and [`Link`], one
//! connection that reconnects by itself and turns every failure into a
//! namedipc error naming the redacted URL.

use std::fs;
use std::time::Duration;

use ::redis::{Client, Connection, ErrorKind, IntoConnectionInfo, RedisError, RedisResult};

use crate::error::{Error, ObjectKind, Result};

/// What a URL may look like, for messages.
const URL_FORMS: &str = "redis://[[user]:password@]host[:port][/db], rediss://... for TLS \
    (add #insecure to skip certificate checks, or ?ca=/path/to/ca.pem to trust that CA), \
    or unix:///path/to/socket[?db=N]";

/// `url` with any password replaced by `***`, for messages.
pub(crate) fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &userinfo[..colon],
        &url[authority_start + at..]
    )
}

/// The value of the query parameter `key` in `url`, if it has one.
fn query_param<'u>(url: &'u str, key: &str) -> Option<&'u str> {
    let before_fragment = url.split('#').next().unwrap_or(url);
    let (_, query) = before_fragment.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// A server, as a URL names it.
pub(crate) struct Server {
    client: Client,
    redacted: String,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its connection info holds the password.
        f.debug_struct("Server")
            .field("url", &self.redacted)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Checks `url` and prepares a client for it; connects to nothing yet.
    pub(crate) fn new(url: &str, connect_timeout: Duration) -> Result<Self> {
        let redacted = redacted(url);
        if connect_timeout.is_zero() {
            return Err(Error::InvalidArgument(format!(
                "the connect timeout for redis server {redacted} must be more than zero"
            )));
        }
        let invalid = |why: &str| {
            Error::InvalidArgument(format!(
                "invalid redis URL {redacted:?}: {why}; a URL looks like {URL_FORMS}"
            ))
        };
        if url.contains('\0') {
            return Err(invalid("it contains a NUL byte"));
        }
        let info = url
            .into_connection_info()
            .map_err(|e| invalid(&describe(&e)))?;
        let tcp = ::redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let info = info.set_tcp_settings(tcp);
        let tls = url.starts_with("rediss://") || url.starts_with("valkeys://");
        let client = match query_param(url, "ca") {
            Some(_) if !tls => return Err(invalid("?ca= is for TLS (rediss://) URLs only")),
            Some(path) => {
                let pem = fs::read(path).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "cannot read the CA file {path:?} named by redis URL {redacted:?}: {e}"
                    ))
                })?;
                let certs = ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                Client::build_with_tls(info, certs).map_err(|e| invalid(&describe(&e)))?
            }
            None => Client::open(info).map_err(|e| invalid(&describe(&e)))?,
        };
        Ok(Self {
            client,
            redacted,
            connect_timeout,
        })
    }

    /// The URL with its password hidden.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }

    /// A new connection whose every read and write times out after `io_timeout`.
    pub(crate) fn connect(&self, io_timeout: Duration) -> Result<Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .map_err(|e| self.error(&e, ""))?;
        con.set_read_timeout(Some(io_timeout))
            .and_then(|()| con.set_write_timeout(Some(io_timeout)))
            .map_err(|e| self.error(&e, ""))?;
        Ok(con)
    }

    /// The namedipc error for `err`, met on the semaphore `name` ("" for
    /// none).
    pub(crate) fn error(&self, err: &RedisError, name: &str) -> Error {
        let code = err.code().unwrap_or("");
        let text = describe(err);
        if err.kind() == ErrorKind::AuthenticationFailed
            || matches!(code, "WRONGPASS" | "NOAUTH")
            || text.contains("WRONGPASS")
            || text.contains("NOAUTH")
        {
            return Error::Unavailable {
                url: self.redacted.clone(),
                reason: "authentication failed: the server refused the user name or password \
                         (give them in the URL: redis://user:password@host or redis://:password@host)"
                    .to_owned(),
            };
        }
        if (code == "WRONGTYPE" || text.contains("WRONGTYPE")) && !name.is_empty() {
            return Error::Corrupt {
                kind: ObjectKind::RedisSemaphore,
                name: name.to_owned(),
                reason: format!(
                    "a key of it on {} holds another type of value",
                    self.redacted
                ),
            };
        }
        let reason = if text.contains("certificate") {
            format!(
                "{text} (to trust a private CA add ?ca=/path/to/ca.pem to the URL; \
                 #insecure skips the check, for test servers only)"
            )
        } else if err.is_timeout() {
            "the server did not answer in time (is it stopped or overloaded?)".to_owned()
        } else if err.is_connection_refusal() {
            format!("cannot connect: {text}")
        } else {
            text
        };
        Error::Unavailable {
            url: self.redacted.clone(),
            reason,
        }
    }
}

/// A redis error as words, without anything the URL held (redis-rs never
/// puts the password in a message) nor its name for the error's kind.
fn describe(err: &RedisError) -> String {
    let text = err.to_string();
    text.strip_suffix(" - InvalidClientConfig")
        .unwrap_or(&text)
        .to_owned()
}

/// Whether `err` says the connection is no longer usable (rather than the
/// server refusing one command).
pub(crate) fn breaks_connection(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
}

/// One connection to a server, made on first use and made again after it
/// broke.
pub(crate) struct Link {
    con: Option<Connection>,
    io_timeout: Duration,
}

impl Link {
    /// A link whose reads and writes time out after `io_timeout`.
    pub(crate) fn new(io_timeout: Duration) -> Self {
        Self {
            con: None,
            io_timeout,
        }
    }

    /// Runs `op` on the connection, connecting first if there is none. When
    /// `op` fails on a connection made earlier (the server restarted, the
    /// connection dropped), it runs once more on a new one: `op` must be
    /// idempotent. `name` is the semaphore's, for messages.
    pub(crate) fn call<T>(
        &mut self,
        server: &Server,
        name: &str,
        mut op: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let reused = self.con.is_some();
        match self.call_once(server, name, &mut op) {
            Err(Error::Unavailable { .. }) if reused && self.con.is_none() => {
                self.call_once(server, name, &mut op)
            }
            other => other,
        }
    }

    fn call_once<T>(
        &mut self,
        server: &Server,
        name: &str,
        op: &mut impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let con = self.connection(server)?;
        op(con).map_err(|e| {
            if breaks_connection(&e) {
                self.con = None;
            }
            server.error(&e, name)
        })
    }

    /// The connection, made if there is none (for settings of its own).
    pub(crate) fn connection(&mut self, server: &Server) -> Result<&mut Connection> {
        if self.con.is_none() {
            self.con = Some(server.connect(self.io_timeout)?);
        }
        Ok(self.con.as_mut().expect("connected just now"))
    }

    /// Forgets the connection (after a failure seen outside [`call`](Self::call)).
    pub(crate) fn drop_connection(&mut self) {
        self.con = None;
    }

    /// Whether a connection is made.
    pub(crate) fn is_connected(&self) -> bool {
        self.con.is_some()
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("connected", &self.con.is_some())
            .field("io_timeout", &self.io_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redacted("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redacted("redis://user:secret@host/1"),
            "redis://user:***@host/1"
        );
        assert_eq!(
            redacted("rediss://u:p@ss@h:1/#insecure"),
            "rediss://u:***@h:1/#insecure"
        );
        assert_eq!(redacted("redis://user@host"), "redis://user@host");
        assert_eq!(redacted("redis://host:6379/0"), "redis://host:6379/0");
        assert_eq!(redacted("not a url"), "not a url");
    }

    #[test]
    fn query_parameters() {
        assert_eq!(query_param("rediss://h/0?ca=/x.pem", "ca"), Some("/x.pem"));
        assert_eq!(
            query_param("rediss://h/0?a=1&ca=/x.pem#insecure", "ca"),
            Some("/x.pem")
        );
        assert_eq!(query_param("rediss://h/0", "ca"), None);
    }

    #[test]
    fn bad_urls_are_invalid_arguments_without_the_password() {
        for url in [
            "http://:pw@host",
            "redis://:pw@host/notanumber",
            "",
            "rediss://:pw@h/0#other",
        ] {
            match Server::new(url, Duration::from_secs(1)) {
                Err(Error::InvalidArgument(message)) => {
                    assert!(!message.contains("pw@"), "{message}");
                    assert!(message.contains("redis://"), "{message}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
