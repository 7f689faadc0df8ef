//! Reading `gluster --xml` output: every answer is a `<cliOutput>` with `opRet` (0,
//! or -1 when glusterd refused), `opErrno` and `opErrstr`, and the answer's own
//! element (`volInfo`, `volStatus`, `healInfo`, `peerStatus`). The parsing is pure and
//! tested against output of GlusterFS 11.1 (Debian's, the storage image's), captured
//! into src/gluster/fixtures/.

use roxmltree::{Document, Node};

/// What glusterd answered: its refusal, or the answer's element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    Done(T),
    /// `opRet` -1: glusterd's `opErrno` and `opErrstr` ("Volume home is not started").
    Refused {
        errno: i64,
        message: String,
    },
}

/// Why an output is not what a reader expects.
pub type XmlError = String;

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn children<'a, 'i>(node: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a
where
    'i: 'a,
{
    node.children().filter(move |n| n.has_tag_name(name))
}

fn text<'a>(node: Node<'a, '_>, name: &str) -> &'a str {
    child(node, name).and_then(|n| n.text()).unwrap_or("").trim()
}

fn number(node: Node<'_, '_>, name: &str) -> i64 {
    text(node, name).parse().unwrap_or(0)
}

/// Reads the `<cliOutput>` document and hands its `element` to `read`, unless glusterd
/// refused.
fn answer<T>(
    xml: &str,
    element: &str,
    read: impl FnOnce(Node<'_, '_>) -> Result<T, XmlError>,
) -> Result<Answer<T>, XmlError> {
    let doc = Document::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if !root.has_tag_name("cliOutput") {
        return Err(format!("<{}> where <cliOutput> was expected", root.tag_name().name()));
    }
    let ret = text(root, "opRet");
    if ret != "0" {
        let message = text(root, "opErrstr");
        let message = if message.is_empty() { text(root, "output") } else { message };
        return Ok(Answer::Refused { errno: number(root, "opErrno"), message: message.into() });
    }
    read(child(root, element).ok_or_else(|| format!("no <{element}>"))?).map(Answer::Done)
}

/// Whether a volume serves files (`statusStr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeState {
    /// Made, never started.
    Created,
    Started,
    Stopped,
    /// A state this version of slurmbox does not know, as GlusterFS names it.
    Other(String),
}

impl VolumeState {
    fn parse(name: &str) -> VolumeState {
        match name {
            "Created" => VolumeState::Created,
            "Started" => VolumeState::Started,
            "Stopped" => VolumeState::Stopped,
            other => VolumeState::Other(other.into()),
        }
    }

    /// GlusterFS's name ("Started").
    pub fn as_str(&self) -> &str {
        match self {
            VolumeState::Created => "Created",
            VolumeState::Started => "Started",
            VolumeState::Stopped => "Stopped",
            VolumeState::Other(name) => name,
        }
    }
}

/// A volume as `volume info` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub state: VolumeState,
    /// "Replicate", "Distribute", ...
    pub kind: String,
    pub replica: u32,
    /// Its bricks, `HOST:PATH` each, in order.
    pub bricks: Vec<String>,
}

/// Parses `gluster --xml volume info [VOLUME]`: every volume listed.
pub fn parse_volume_info(xml: &str) -> Result<Answer<Vec<VolumeInfo>>, XmlError> {
    answer(xml, "volInfo", |info| {
        let volumes = child(info, "volumes").ok_or("no <volumes>")?;
        Ok(children(volumes, "volume")
            .map(|v| VolumeInfo {
                name: text(v, "name").into(),
                state: VolumeState::parse(text(v, "statusStr")),
                kind: text(v, "typeStr").into(),
                replica: number(v, "replicaCount") as u32,
                bricks: child(v, "bricks")
                    .map(|b| children(b, "brick").map(|b| text(b, "name").to_string()).collect())
                    .unwrap_or_default(),
            })
            .collect())
    })
}

/// One of a volume's processes as `volume status` lists them: a brick (its `path` a
/// folder), or a daemon serving the volume ("Self-heal Daemon" on a host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeProcess {
    /// The brick's host, or the daemon's name.
    pub hostname: String,
    /// The brick's folder, or the daemon's host.
    pub path: String,
    pub online: bool,
    /// `None` while it is not running.
    pub pid: Option<u32>,
}

impl VolumeProcess {
    pub fn is_brick(&self) -> bool {
        self.path.starts_with('/')
    }

    /// `HOST:PATH`, as `volume info` names bricks.
    pub fn brick(&self) -> String {
        format!("{}:{}", self.hostname, self.path)
    }
}

/// Parses `gluster --xml volume status VOLUME`: its processes.
pub fn parse_volume_status(xml: &str) -> Result<Answer<Vec<VolumeProcess>>, XmlError> {
    answer(xml, "volStatus", |status| {
        let volume = child(status, "volumes").and_then(|v| child(v, "volume")).ok_or("no <volume>")?;
        Ok(children(volume, "node")
            .map(|n| VolumeProcess {
                hostname: text(n, "hostname").into(),
                path: text(n, "path").into(),
                online: text(n, "status") == "1",
                pid: text(n, "pid").parse().ok(),
            })
            .collect())
    })
}

/// A brick as `volume heal VOLUME info summary` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrickHeal {
    /// `HOST:PATH`.
    pub brick: String,
    /// "Connected", or why its entries could not be read ("Transport endpoint is not
    /// connected"); then it has no counts.
    pub status: String,
    /// Files this brick knows another one lacks, which self-heal will copy.
    pub heal_pending: u64,
    /// Files whose copies disagree with no way to tell which is right.
    pub split_brain: u64,
    pub possibly_healing: u64,
}

/// Parses `gluster --xml volume heal VOLUME info summary`: each brick's counts.
pub fn parse_heal_summary(xml: &str) -> Result<Answer<Vec<BrickHeal>>, XmlError> {
    answer(xml, "healInfo", |heal| {
        let bricks = child(heal, "bricks").ok_or("no <bricks>")?;
        Ok(children(bricks, "brick")
            .map(|b| {
                let count = |name| number(b, name).max(0) as u64;
                BrickHeal {
                    brick: text(b, "name").into(),
                    status: text(b, "status").into(),
                    heal_pending: count("numberOfEntriesInHealPending"),
                    split_brain: count("numberOfEntriesInSplitBrain"),
                    possibly_healing: count("numberOfEntriesPossiblyHealing"),
                }
            })
            .collect())
    })
}

/// Another host's glusterd, as `peer status` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uuid: String,
    pub hostname: String,
    /// Its glusterd answers now.
    pub connected: bool,
    /// "Peer in Cluster", "Accepted peer request", ...
    pub state: String,
}

/// Parses `gluster --xml peer status`: the other hosts (not this one).
pub fn parse_peer_status(xml: &str) -> Result<Answer<Vec<Peer>>, XmlError> {
    answer(xml, "peerStatus", |peers| {
        Ok(children(peers, "peer")
            .map(|p| Peer {
                uuid: text(p, "uuid").into(),
                hostname: text(p, "hostname").into(),
                connected: text(p, "connected") == "1",
                state: text(p, "stateStr").into(),
            })
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done<T: std::fmt::Debug>(answer: Result<Answer<T>, XmlError>) -> T {
        match answer.unwrap() {
            Answer::Done(t) => t,
            refused => panic!("{refused:?}"),
        }
    }

    fn refused<T: std::fmt::Debug>(answer: Result<Answer<T>, XmlError>) -> (i64, String) {
        match answer.unwrap() {
            Answer::Refused { errno, message } => (errno, message),
            done => panic!("{done:?}"),
        }
    }

    #[test]
    fn volume_info_says_state_and_bricks() {
        let started = done(parse_volume_info(include_str!("fixtures/volume-info-started.xml")));
        assert_eq!(
            started,
            [VolumeInfo {
                name: "home".into(),
                state: VolumeState::Started,
                kind: "Replicate".into(),
                replica: 2,
                bricks: vec!["gl1:/srv/brick/home".into(), "gl2:/srv/brick/home".into()],
            }]
        );
        let state = |xml| done(parse_volume_info(xml))[0].state.clone();
        assert_eq!(state(include_str!("fixtures/volume-info-created.xml")), VolumeState::Created);
        assert_eq!(state(include_str!("fixtures/volume-info-stopped.xml")), VolumeState::Stopped);
        let none = refused(parse_volume_info(include_str!("fixtures/volume-info-none.xml")));
        assert_eq!(none, (30806, "Volume does not exist".into()));
    }

    #[test]
    fn volume_status_says_which_bricks_are_online() {
        let online = |xml| {
            done(parse_volume_status(xml))
                .iter()
                .filter(|p| p.is_brick())
                .map(|p| (p.brick(), p.online))
                .collect::<Vec<_>>()
        };
        let bricks =
            |a, b| vec![("gl1:/srv/brick/home".to_string(), a), ("gl2:/srv/brick/home".to_string(), b)];
        assert_eq!(online(include_str!("fixtures/volume-status-started.xml")), bricks(true, true));
        assert_eq!(online(include_str!("fixtures/volume-status-brick-down.xml")), bricks(true, false));
        assert_eq!(online(include_str!("fixtures/volume-status-bricks-offline.xml")), bricks(false, false));
        let all = done(parse_volume_status(include_str!("fixtures/volume-status-brick-down.xml")));
        assert_eq!((all.len(), all[1].pid, all[0].pid), (4, None, Some(156)));
        assert_eq!(
            (all[2].hostname.as_str(), all[2].is_brick(), all[2].online),
            ("Self-heal Daemon", false, true)
        );
        let stopped = refused(parse_volume_status(include_str!("fixtures/volume-status-stopped.xml")));
        assert_eq!(stopped, (30800, "Volume home is not started".into()));
    }

    #[test]
    fn heal_summary_counts_per_brick() {
        let counts = |xml| {
            done(parse_heal_summary(xml)).iter().map(|b| (b.heal_pending, b.split_brain)).collect::<Vec<_>>()
        };
        assert_eq!(counts(include_str!("fixtures/heal-summary-clean.xml")), [(0, 0), (0, 0)]);
        assert_eq!(counts(include_str!("fixtures/heal-summary-pending.xml")), [(5, 0), (0, 0)]);
        assert_eq!(counts(include_str!("fixtures/heal-summary-split-brain.xml")), [(2, 1), (0, 1)]);
        let pending = done(parse_heal_summary(include_str!("fixtures/heal-summary-pending.xml")));
        assert_eq!(pending[0].status, "Connected");
        assert!(
            pending[1].status.starts_with("Failed to process entries completely"),
            "{}",
            pending[1].status
        );
        let failed = refused(parse_heal_summary(include_str!("fixtures/heal-summary-failed.xml")));
        assert_eq!(failed, (5, "home: Not able to fetch volfile from glusterd".into()));
    }

    #[test]
    fn peers_and_whether_they_answer() {
        assert!(done(parse_peer_status(include_str!("fixtures/peer-status-alone.xml"))).is_empty());
        let read = |xml| {
            done(parse_peer_status(xml))
                .into_iter()
                .map(|p| (p.hostname, p.connected, p.state))
                .collect::<Vec<_>>()
        };
        let gl2 = |connected| vec![("gl2".to_string(), connected, "Peer in Cluster".to_string())];
        assert_eq!(read(include_str!("fixtures/peer-status-connected.xml")), gl2(true));
        assert_eq!(read(include_str!("fixtures/peer-status-disconnected.xml")), gl2(false));
    }

    #[test]
    fn what_is_not_gluster_xml_is_an_error() {
        assert!(parse_volume_info("Volume Name: home\nStatus: Started\n").is_err());
        assert!(parse_peer_status("<?xml version=\"1.0\"?><other/>").is_err());
        assert!(parse_volume_status("<cliOutput><opRet>0</opRet></cliOutput>").is_err());
    }
}
