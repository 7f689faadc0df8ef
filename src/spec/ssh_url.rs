//! `ssh://[user@]host[:port][/socket]`: the engine address of a host reached over ssh,
//! read here so that the spec can check it and the engine opens its ssh tunnel from
//! the same reading.

/// Where the engine listens on the host when the URL does not say.
pub const DEFAULT_REMOTE_SOCKET: &str = "/var/run/docker.sock";

/// The parts of an `ssh://[user@]host[:port][/socket]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshUrl {
    /// `user@host` (or `host`), as given to ssh.
    pub destination: String,
    pub port: Option<u16>,
    /// The engine's socket on the host.
    pub remote_socket: String,
}

impl SshUrl {
    /// Parses `ssh://user@host[:port][/path/to/docker.sock]`; None if it is not one.
    pub fn parse(url: &str) -> Option<SshUrl> {
        let rest = url.strip_prefix("ssh://")?;
        let (authority, socket) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (Some(user), hostport),
            None => (None, authority),
        };
        // `[::1]:22` and `host:22`; a bare IPv6 address has more than one colon.
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        } else if hostport.matches(':').count() == 1 {
            let (host, port) = hostport.split_once(':')?;
            (host, Some(port))
        } else {
            (hostport, None)
        };
        let port = match port {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        if host.is_empty() || user == Some("") {
            return None;
        }
        let destination = match user {
            Some(user) => format!("{user}@{host}"),
            None => host.to_string(),
        };
        let remote_socket = if socket.is_empty() || socket == "/" {
            DEFAULT_REMOTE_SOCKET.to_string()
        } else {
            socket.to_string()
        };
        Some(SshUrl { destination, port, remote_socket })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_are_read_into_their_parts() {
        let t = SshUrl::parse("ssh://admin@gpu1.example.org").unwrap();
        assert_eq!(t.destination, "admin@gpu1.example.org");
        assert_eq!((t.port, t.remote_socket.as_str()), (None, DEFAULT_REMOTE_SOCKET));
        let t = SshUrl::parse("ssh://pi@10.0.0.2:2222/run/user/1000/docker.sock").unwrap();
        assert_eq!((t.destination.as_str(), t.port), ("pi@10.0.0.2", Some(2222)));
        assert_eq!(t.remote_socket, "/run/user/1000/docker.sock");
        let t = SshUrl::parse("ssh://root@[fd00::1]:22").unwrap();
        assert_eq!((t.destination.as_str(), t.port), ("root@fd00::1", Some(22)));
        assert_eq!(SshUrl::parse("ssh://host").unwrap().destination, "host");
        for bad in ["tcp://a:1", "ssh://", "ssh://@host", "ssh://u@host:port", "ssh://u@"] {
            assert_eq!(SshUrl::parse(bad), None, "{bad}");
        }
    }
}
