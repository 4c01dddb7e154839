//! Who holds a lease: a token that names one holder uniquely, and the test that says a holder on
//! this machine is provably dead, so that its run can be taken over at once.

use std::fmt;
use std::path::Path;

/// The holder of a run's lease, as stored in the lease's owner field:
/// `orc pid=<pid> start=<ticks> host=<name> boot=<boot id> pidns=<inode> nonce=<16 hex>`.
///
/// The nonce makes every holder unique, even two processes with the same pid in separate pid
/// namespaces (containers) on one host. Host, boot id, pid namespace and the process's start time
/// (field 22 of `/proc/<pid>/stat`, clock ticks since boot) let another process on the same machine
/// prove the holder dead: same host, boot and pid namespace, and that pid is gone, a zombie, or
/// now another process (a different start time). Any field that could not be read is empty, and
/// then the holder is never judged dead (its lease must lapse instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner {
    /// The process id, in the holder's pid namespace.
    pub pid: u32,
    /// The process's start time in clock ticks since boot; empty when unknown.
    pub start: String,
    /// The host name (whitespace replaced); empty when unknown.
    pub host: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`); empty when unknown.
    pub boot: String,
    /// The pid namespace's inode (`/proc/self/ns/pid`); empty when unknown.
    pub pid_ns: String,
    /// Random, new for every holder.
    pub nonce: String,
}

impl LeaseOwner {
    /// A new, unique token for this process (reads a few files under `/proc`, on the blocking
    /// pool).
    pub async fn this_process() -> LeaseOwner {
        // What /proc says of this process does not change while it lives: read it once (a
        // service claims a lease for every run it starts).
        static HERE: tokio::sync::OnceCell<(Machine, String)> = tokio::sync::OnceCell::const_new();
        let nonce = format!("{:016x}", fastrand::u64(..));
        let pid = std::process::id();
        let (here, start) = HERE
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    let proc = Path::new("/proc");
                    let here = Machine::read(proc);
                    let start = ours(proc)
                        .then(|| proc_stat(proc, pid).map(|s| s.start))
                        .flatten()
                        .unwrap_or_default();
                    (here, start)
                })
                .await
                .unwrap_or_default()
            })
            .await
            .clone();
        LeaseOwner {
            pid,
            start,
            host: here.host,
            boot: here.boot,
            pid_ns: here.pid_ns,
            nonce,
        }
    }

    /// The token stored as text, or `None` when `text` is not one (an older orc's `pid N`, or
    /// another program's).
    pub fn parse(text: &str) -> Option<LeaseOwner> {
        let mut words = text.split(' ');
        if words.next()? != "orc" {
            return None;
        }
        let mut owner = LeaseOwner {
            pid: 0,
            start: String::new(),
            host: String::new(),
            boot: String::new(),
            pid_ns: String::new(),
            nonce: String::new(),
        };
        let mut pid = None;
        for word in words {
            let (key, value) = word.split_once('=')?;
            let value = value.to_owned();
            match key {
                "pid" => pid = value.parse().ok(),
                "start" => owner.start = value,
                "host" => owner.host = value,
                "boot" => owner.boot = value,
                "pidns" => owner.pid_ns = value,
                "nonce" => owner.nonce = value,
                _ => {}
            }
        }
        owner.pid = pid?;
        Some(owner)
    }

    /// Whether this holder is provably dead, judged from this process with `/proc` at `proc`:
    /// it ran on this host, in this boot, in this pid namespace, and its pid is gone, a zombie, or
    /// another process now. `false` whenever anything is unknown.
    pub(crate) fn is_provably_dead(&self, proc: &Path) -> bool {
        let here = Machine::read(proc);
        if !here.complete()
            || self.start.is_empty()
            || self.host != here.host
            || self.boot != here.boot
            || self.pid_ns != here.pid_ns
        {
            return false;
        }
        if !ours(proc) {
            return false;
        }
        match proc_stat(proc, self.pid) {
            None => !proc.join(self.pid.to_string()).exists(),
            Some(stat) => matches!(stat.state, 'Z' | 'X') || stat.start != self.start,
        }
    }
}

impl fmt::Display for LeaseOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "orc pid={} start={} host={} boot={} pidns={} nonce={}",
            self.pid, self.start, self.host, self.boot, self.pid_ns, self.nonce
        )
    }
}

/// What identifies this machine, this boot and this pid namespace.
#[derive(Debug, Default, Clone)]
struct Machine {
    host: String,
    boot: String,
    pid_ns: String,
}

impl Machine {
    fn read(proc: &Path) -> Machine {
        let text = |rel: &str| {
            std::fs::read_to_string(proc.join(rel))
                .map(|t| word(t.trim()))
                .unwrap_or_default()
        };
        let pid_ns = std::fs::read_link(proc.join("self/ns/pid"))
            .ok()
            .and_then(|link| {
                let link = link.to_string_lossy().into_owned();
                link.strip_prefix("pid:[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        Machine {
            host: text("sys/kernel/hostname"),
            boot: text("sys/kernel/random/boot_id"),
            pid_ns,
        }
    }

    fn complete(&self) -> bool {
        !self.host.is_empty() && !self.boot.is_empty() && !self.pid_ns.is_empty()
    }
}

/// Whether `/proc` is this pid namespace's: it knows this process by the pid it has. (After
/// `unshare --pid` without a new `/proc`, it is the parent namespace's, and its pids are
/// other processes.)
fn ours(proc: &Path) -> bool {
    std::fs::read_link(proc.join("self"))
        .is_ok_and(|link| link.as_os_str() == std::process::id().to_string().as_str())
}

/// `text` as one word of the token: whitespace and `=` become `_`.
fn word(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_whitespace() || c == '=' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// A process's state letter and start time, from `/proc/<pid>/stat`.
struct Stat {
    state: char,
    start: String,
}

fn proc_stat(proc: &Path, pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    // Field 2, the command, is in parentheses and may hold anything: fields 3 on follow the
    // last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        // Field 22 is the 20th after the command.
        start: (*fields.get(19)?).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn proc() -> &'static Path {
        Path::new("/proc")
    }

    #[tokio::test]
    async fn tokens_round_trip_and_are_unique() {
        let a = LeaseOwner::this_process().await;
        let b = LeaseOwner::this_process().await;
        assert_ne!(a, b, "every holder gets its own nonce");
        assert_eq!(a.pid, std::process::id());
        assert_eq!(LeaseOwner::parse(&a.to_string()), Some(a.clone()));
        assert_eq!(LeaseOwner::parse("pid 42"), None);
        assert_eq!(LeaseOwner::parse("orc start=1"), None, "no pid");
        if cfg!(target_os = "linux") {
            assert!(!a.start.is_empty() && !a.boot.is_empty() && !a.pid_ns.is_empty());
            assert!(!a.is_provably_dead(proc()), "this process is alive");
        }
    }

    #[tokio::test]
    async fn a_gone_pid_or_another_start_time_is_dead_elsewhere_unknown() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let me = LeaseOwner::this_process().await;
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = LeaseOwner { pid, ..me.clone() };
        assert!(gone.is_provably_dead(proc()), "a reaped pid");
        let reused = LeaseOwner {
            start: "1".into(),
            ..me.clone()
        };
        assert!(reused.is_provably_dead(proc()), "this pid, another start");
        for other in [
            LeaseOwner {
                pid_ns: "1".into(),
                ..gone.clone()
            },
            LeaseOwner {
                boot: "another-boot".into(),
                ..gone.clone()
            },
            LeaseOwner {
                host: "elsewhere".into(),
                ..gone.clone()
            },
            LeaseOwner {
                start: String::new(),
                ..gone.clone()
            },
        ] {
            assert!(!other.is_provably_dead(proc()), "{other}");
        }
    }

    /// A `/proc` of host `h`, boot `b`, pid namespace 42, whose `self` is `pid`.
    fn fake_proc(self_pid: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("sys/kernel/random")).unwrap();
        std::fs::write(p.join("sys/kernel/hostname"), "h\n").unwrap();
        std::fs::write(p.join("sys/kernel/random/boot_id"), "b\n").unwrap();
        std::fs::create_dir_all(p.join(format!("{self_pid}/ns"))).unwrap();
        std::os::unix::fs::symlink("pid:[42]", p.join(format!("{self_pid}/ns/pid"))).unwrap();
        std::os::unix::fs::symlink(self_pid.to_string(), p.join("self")).unwrap();
        dir
    }

    #[test]
    fn only_a_proc_of_this_pid_namespace_can_prove_a_holder_dead() {
        let holder = LeaseOwner {
            pid: 5,
            start: "1".into(),
            host: "h".into(),
            boot: "b".into(),
            pid_ns: "42".into(),
            nonce: "n".into(),
        };
        assert!(holder.is_provably_dead(fake_proc(std::process::id()).path()));
        // A `/proc` that names another process `self` is another namespace's.
        assert!(!holder.is_provably_dead(fake_proc(std::process::id() + 1).path()));
    }

    #[test]
    fn stat_parses_a_command_with_parentheses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("7")).unwrap();
        let mut fields = vec!["S"; 20];
        fields[19] = "12345";
        std::fs::write(
            dir.path().join("7/stat"),
            format!("7 (we) ird) cmd) {}\n", fields.join(" ")),
        )
        .unwrap();
        let stat = proc_stat(dir.path(), 7).unwrap();
        assert_eq!((stat.state, stat.start.as_str()), ('S', "12345"));
    }
}
