//! Slurm's jobs as slurmbox reads them: [`Job`] and its typed [`JobState`], parsed
//! from `squeue --json`, and the jobs accounting keeps ([`AccountedJob`], from `sacct
//! --json`), both data_parser v0.0.42.

use std::fmt;

use serde::Deserialize;

/// A job's base state (Slurm's names, `squeue -o %T`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Suspended,
    Completed,
    Cancelled,
    Failed,
    Timeout,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    OutOfMemory,
    /// A state this version of slurmbox does not know, as Slurm names it.
    Other(String),
}

impl JobState {
    fn parse(name: &str) -> Option<JobState> {
        Some(match name {
            "PENDING" => JobState::Pending,
            "RUNNING" => JobState::Running,
            "SUSPENDED" => JobState::Suspended,
            "COMPLETED" => JobState::Completed,
            "CANCELLED" => JobState::Cancelled,
            "FAILED" => JobState::Failed,
            "TIMEOUT" => JobState::Timeout,
            "NODE_FAIL" => JobState::NodeFail,
            "PREEMPTED" => JobState::Preempted,
            "BOOT_FAIL" => JobState::BootFail,
            "DEADLINE" => JobState::Deadline,
            "OUT_OF_MEMORY" => JobState::OutOfMemory,
            _ => return None,
        })
    }

    fn name(&self) -> &str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Running => "RUNNING",
            JobState::Suspended => "SUSPENDED",
            JobState::Completed => "COMPLETED",
            JobState::Cancelled => "CANCELLED",
            JobState::Failed => "FAILED",
            JobState::Timeout => "TIMEOUT",
            JobState::NodeFail => "NODE_FAIL",
            JobState::Preempted => "PREEMPTED",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::Other(name) => name,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A job in the controller's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub name: String,
    pub user: String,
    pub partition: String,
    pub state: JobState,
    /// Still releasing its nodes (Slurm's COMPLETING flag).
    pub completing: bool,
    /// Why it waits (e.g. "Resources"); `None` for a job not held back.
    pub reason: Option<String>,
    /// The nodes it has been given, one name each (empty while it waits).
    pub nodes: Vec<String>,
}

#[derive(Deserialize)]
struct QueueDoc {
    jobs: Vec<JobJson>,
}

#[derive(Deserialize)]
struct JobJson {
    job_id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    partition: String,
    job_state: Vec<String>,
    #[serde(default)]
    state_reason: String,
    job_resources: Option<Resources>,
}

#[derive(Deserialize)]
struct Resources {
    nodes: Option<Allocated>,
}

#[derive(Deserialize)]
struct Allocated {
    #[serde(default)]
    allocation: Vec<Allocation>,
}

#[derive(Deserialize)]
struct Allocation {
    name: String,
}

/// Parses `squeue --json=v0.0.42`.
pub fn parse_jobs(json: &str) -> Result<Vec<Job>, serde_json::Error> {
    let doc: QueueDoc = serde_json::from_str(json)?;
    Ok(doc
        .jobs
        .into_iter()
        .map(|j| {
            let state = j.job_state.iter().find_map(|s| JobState::parse(s));
            let completing = j.job_state.iter().any(|s| s == "COMPLETING");
            let state = state.unwrap_or_else(|| match j.job_state.first() {
                // A job whose only flag is COMPLETING ran before.
                _ if completing => JobState::Running,
                Some(other) => JobState::Other(other.clone()),
                None => JobState::Other(String::new()),
            });
            let nodes = j
                .job_resources
                .and_then(|r| r.nodes)
                .map(|n| n.allocation.into_iter().map(|a| a.name).collect())
                .unwrap_or_default();
            Job {
                id: j.job_id,
                name: j.name,
                user: j.user_name,
                partition: j.partition,
                state,
                completing,
                reason: Some(j.state_reason).filter(|r| !r.is_empty() && r != "None"),
                nodes,
            }
        })
        .collect())
}

/// A job as accounting keeps it (`sacct -X`: the job, not its steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountedJob {
    /// Its own ID; every task of an array has one.
    pub id: u64,
    /// The array's ID (what `sacct` prints before `_`), for a task of an array.
    pub array_id: Option<u64>,
    pub name: String,
    pub user: String,
    pub account: String,
    pub state: JobState,
}

#[derive(Deserialize)]
struct SacctDoc {
    jobs: Vec<SacctJson>,
}

#[derive(Deserialize)]
struct SacctJson {
    job_id: u64,
    #[serde(default)]
    array: Option<SacctArray>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    account: String,
    state: SacctState,
}

#[derive(Deserialize)]
struct SacctArray {
    /// 0 for a job of no array.
    #[serde(default)]
    job_id: u64,
}

#[derive(Deserialize)]
struct SacctState {
    current: Vec<String>,
}

/// Parses `sacct --json=v0.0.42`.
pub fn parse_sacct(json: &str) -> Result<Vec<AccountedJob>, serde_json::Error> {
    let doc: SacctDoc = serde_json::from_str(json)?;
    Ok(doc
        .jobs
        .into_iter()
        .map(|j| AccountedJob {
            id: j.job_id,
            array_id: j.array.map(|a| a.job_id).filter(|id| *id != 0),
            state: j
                .state
                .current
                .iter()
                .find_map(|s| JobState::parse(s))
                .unwrap_or_else(|| JobState::Other(j.state.current.join(","))),
            name: j.name,
            user: j.user,
            account: j.account,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSY: [&str; 2] =
        [include_str!("fixtures/24.11-squeue-busy.json"), include_str!("fixtures/26.05-squeue-busy.json")];
    const EMPTY: [&str; 2] =
        [include_str!("fixtures/24.11-squeue-empty.json"), include_str!("fixtures/26.05-squeue-empty.json")];

    #[test]
    fn running_and_pending_jobs_with_their_nodes() {
        for json in BUSY {
            let jobs = parse_jobs(json).unwrap();
            let read: Vec<_> = jobs.iter().map(|j| (j.id, j.state.to_string(), j.nodes.clone())).collect();
            assert_eq!(
                read,
                [
                    (1, "RUNNING".to_string(), vec!["node1".to_string()]),
                    (2, "RUNNING".to_string(), vec!["node2".to_string()]),
                    (3, "PENDING".to_string(), vec![]),
                ]
            );
            let waiting = &jobs[2];
            assert_eq!((waiting.name.as_str(), waiting.reason.as_deref()), ("waits", Some("Resources")));
            assert_eq!((jobs[0].user.as_str(), jobs[0].partition.as_str()), ("researcher", "debug"));
            assert_eq!(jobs[0].reason, None);
            assert!(!jobs[0].completing);
        }
        for json in EMPTY {
            assert!(parse_jobs(json).unwrap().is_empty());
        }
    }

    #[test]
    fn completing_is_a_flag_on_the_state() {
        let doc = r#"{"jobs": [{"job_id": 7, "job_state": ["COMPLETING"], "job_resources": null},
                              {"job_id": 8, "job_state": ["CANCELLED", "COMPLETING"]},
                              {"job_id": 9, "job_state": ["RESV_DEL_HOLD"]}]}"#;
        let jobs = parse_jobs(doc).unwrap();
        assert_eq!((jobs[0].state.clone(), jobs[0].completing), (JobState::Running, true));
        assert_eq!((jobs[1].state.clone(), jobs[1].completing), (JobState::Cancelled, true));
        assert_eq!(jobs[2].state, JobState::Other("RESV_DEL_HOLD".into()));
    }

    #[test]
    fn accounted_jobs_with_array_tasks() {
        for json in
            [include_str!("fixtures/24.11-sacct-jobs.json"), include_str!("fixtures/26.05-sacct-jobs.json")]
        {
            let jobs = parse_sacct(json).unwrap();
            let read: Vec<_> = jobs.iter().map(|j| (j.id, j.array_id, j.account.as_str())).collect();
            // Job 2 is an array of two tasks: 2_2 keeps the ID 2, 2_1 got 4.
            assert_eq!(
                read,
                [(1, None, "physics"), (3, None, "chem"), (4, Some(2), "chem"), (2, Some(2), "chem")]
            );
            assert!(jobs.iter().all(|j| j.state == JobState::Completed && j.user == "alice"));
        }
        assert!(parse_sacct("1\n2_1\n").is_err());
    }
}
