//! Root file systems of newer Debian suites, for servers the host's Debian does not ship (Oracle
//! MySQL 9.7 from `sid`, MariaDB 11.8 from `trixie`): built once with `mmdebstrap` into the cache
//! directory and entered with `chroot`, which shares the host's network.

use crate::error::TestbedError;
use crate::process::{cache_dir, chmod_755, is_root, run};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Debian suite and the packages a server needs from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recipe {
    /// The cache directory's name for the built tree, e.g. `mysql-9.7`.
    pub name: &'static str,
    /// The Debian suite, e.g. `sid`.
    pub suite: &'static str,
    /// Comma-separated packages to install.
    pub packages: &'static str,
    /// A program the tree must hold once built (checked before it is marked complete).
    pub must_have: &'static str,
}

/// Returns the root of `recipe`'s tree, building it on first use. Parallel tests wait on a lock
/// while one builds; a tree is used only once a marker says its build completed.
pub(crate) fn ensure(recipe: &Recipe) -> Result<PathBuf, TestbedError> {
    let base = cache_dir().join("rootfs");
    let root = base.join(recipe.name);
    let installed = base.join(format!("{}.installed", recipe.name));
    if installed.exists() {
        return Ok(root);
    }
    if !is_root() {
        return Err(TestbedError::Missing {
            what: format!("root privileges to build and enter the {} root file system", recipe.name),
            fix: "run the tests as root (scripts/test does on a fresh machine)".into(),
        });
    }
    std::fs::create_dir_all(&base).map_err(TestbedError::io(format!("creating {}", base.display())))?;
    let lock_path = base.join(format!("{}.lock", recipe.name));
    let lock =
        OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(TestbedError::io(format!("opening {}", lock_path.display())))?;
    lock.lock().map_err(TestbedError::io("locking the root file system lock"))?;
    if !installed.exists() {
        build(recipe, &root)?;
        std::fs::write(&installed, recipe.suite).map_err(TestbedError::io(format!("writing {}", installed.display())))?;
    }
    for dir in [cache_dir(), base.clone(), root.clone()] {
        let _ = chmod_755(&dir);
    }
    drop(lock);
    Ok(root)
}

fn build(recipe: &Recipe, root: &Path) -> Result<(), TestbedError> {
    if crate::process::find_program("mmdebstrap").is_none() {
        return Err(TestbedError::Missing { what: "mmdebstrap".into(), fix: "apt-get install -y mmdebstrap".into() });
    }
    // A half-built tree from an interrupted build is thrown away.
    if root.exists() {
        std::fs::remove_dir_all(root).map_err(TestbedError::io(format!("removing {}", root.display())))?;
    }
    run(Command::new("mmdebstrap")
        .args(["--variant=minbase", "--quiet"])
        // The mirror's `sid` Release file carries an expiry date that may have passed.
        .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
        .arg(format!("--include={}", recipe.packages))
        .arg(recipe.suite)
        .arg(root))
    .map_err(|e| match e {
        TestbedError::Command { command, output } => {
            TestbedError::Command { command, output: format!("{output}\nbuilding the {} root file system from Debian {} failed", recipe.name, recipe.suite) }
        }
        other => other,
    })?;
    // mariadb-install-db looks `localhost` up and gives up without a hosts file.
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n").map_err(TestbedError::io("writing the root file system's /etc/hosts"))?;
    // MySQL's server package does not create its service user.
    let has_user = std::fs::read_to_string(root.join("etc/passwd")).map(|p| p.lines().any(|l| l.starts_with("mysql:"))).unwrap_or(false);
    if !has_user {
        run(Command::new("chroot").arg(root).args(["useradd", "--system", "--no-create-home", "mysql"]))?;
    }
    if !root.join(recipe.must_have.trim_start_matches('/')).exists() {
        return Err(TestbedError::Missing {
            what: format!("{} in the {} root file system", recipe.must_have, recipe.name),
            fix: format!("check that Debian {} still has the packages {}", recipe.suite, recipe.packages),
        });
    }
    Ok(())
}

/// A command that runs `program` (a path inside `root`) in the chroot `root`, or on the host when
/// `root` is `None`. `chroot` execs in place, so the child's pid is the program's.
pub(crate) fn command(root: Option<&Path>, program: &Path) -> Command {
    match root {
        Some(root) => {
            let mut c = Command::new("chroot");
            c.arg(root).arg(program);
            c
        }
        None => Command::new(program),
    }
}
