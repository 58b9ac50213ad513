//! A throwaway real PostgreSQL server for tests (Debian's `postgresql` package): `initdb` and
//! `pg_ctl` in a temp dir, on a free loopback port, trust auth, stopped and removed on drop;
//! [`Postgres::stop`] and [`Postgres::run`] take the database away and bring it back mid-test.
//! As root, the tools run as the `postgres` user (`initdb` refuses root).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `$TMPDIR/oy3o-TAG-PID-N`, created empty.
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oy3o-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A PostgreSQL server of its own, in a temp dir, on a free loopback port.
pub struct Postgres {
    bin: PathBuf,
    dir: TempDir,
    /// Its loopback port.
    pub port: u16,
}

/// Where `initdb` and `pg_ctl` are: on PATH, else Debian's versioned dir.
fn pg_bin() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return dir;
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL tests need `initdb` and `pg_ctl` (Debian package `postgresql`), found \
             neither on PATH nor in /usr/lib/postgresql/*/bin: run scripts/setup"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `initdb` refuses to run as root: as root, run the PostgreSQL tools as the `postgres` user.
fn pg_command(bin: &Path, tool: &str) -> Command {
    let exe = bin.join(tool);
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(exe);
        cmd
    } else {
        Command::new(exe)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Postgres {
    /// Creates a cluster and starts it; panics with what to do when PostgreSQL is missing.
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = TempDir::new("pg");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir.0)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of the PostgreSQL temp dir failed");
        }
        let data = dir.0.join("data");
        let out = pg_command(&bin, "initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Self {
            bin,
            dir,
            port: free_port(),
        };
        pg.run();
        pg
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) on the same dir and port.
    pub fn run(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.0.display()
        );
        let out = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.0.join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.0.join("log")).unwrap_or_default()
        );
    }

    /// Stops the server at once (open connections are cut).
    pub fn stop(&self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
