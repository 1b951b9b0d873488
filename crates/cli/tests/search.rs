//! `gpufs search`, `gpufs du` and `gpufs stats` against a live mount: results equal
//! `find` on the same tree, follow changes at once, and never show a name in a
//! directory the asking user cannot list.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{gpufs, run, Mounted, Rng, Scratch};

fn lines(out: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::to_string)
        .collect()
}

fn search(mp: &Path, args: &[&str]) -> BTreeSet<String> {
    let o = run(gpufs().arg("search").arg(mp).args(args));
    assert!(
        o.status.success(),
        "search {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    lines(&o.stdout)
}

fn find(mp: &Path, args: &[&str]) -> BTreeSet<String> {
    let o = run(Command::new("find")
        .arg(mp)
        .arg("-mindepth")
        .arg("1")
        .args(args));
    assert!(o.status.success());
    lines(&o.stdout)
}

fn as_nobody(cmd: &mut Command) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    c
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// A fresh 1G image mounted with `--allow-other`, the way down to the mount open to
/// every user (for the questions asked as nobody).
fn shared_mount(s: &Scratch) -> Mounted {
    chmod(s.dir.path(), 0o755);
    let img = s.mkfs("img", "1G");
    let m = Mounted::with_args(&img, &s.path("mnt"), &["--allow-other"]);
    chmod(&m.mp, 0o755);
    m
}

/// Fills `root` with a seeded tree: 1,500 entries, one in ten a directory, names built
/// from words that the searches below look for.
fn fill_tree(root: &Path) {
    let mut rng = Rng(7);
    let words = [
        "report", "Report", "notes", "IMG_2023", "data", "readme", "x.tar.gz",
    ];
    let exts = ["txt", "md", "jpg", "rs", "JPG"];
    let mut dirs = vec![root.to_path_buf()];
    for i in 0..1500 {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let w = words[rng.below(words.len() as u64) as usize];
        let e = exts[rng.below(exts.len() as u64) as usize];
        if i % 10 == 0 {
            let d = parent.join(format!("{w}-dir{i}"));
            std::fs::create_dir(&d).expect("mkdir");
            dirs.push(d);
        } else {
            std::fs::write(
                parent.join(format!("{w}_{i}.{e}")),
                vec![0u8; (i % 7) * 1000],
            )
            .expect("write");
        }
    }
}

/// Name searches: substrings, globs, regexes, with and without case.
fn names_equal_find(mp: &Path) {
    assert_eq!(search(mp, &["report"]), find(mp, &["-name", "*report*"]));
    assert_eq!(
        search(mp, &["-i", "report"]),
        find(mp, &["-iname", "*report*"])
    );
    assert_eq!(
        search(mp, &["--glob", "*.jpg"]),
        find(mp, &["-name", "*.jpg"])
    );
    assert_eq!(
        search(mp, &["--glob", "-i", "*.jpg"]),
        find(mp, &["-iname", "*.jpg"])
    );
    assert_eq!(
        search(mp, &["--glob", "[rR]e?ort_1*"]),
        find(mp, &["-name", "[rR]e?ort_1*"])
    );
    assert_eq!(
        search(mp, &["--regex", "^IMG_2023_[0-9]+\\.md$"]),
        find(
            mp,
            &[
                "-regextype",
                "posix-extended",
                "-regex",
                ".*/IMG_2023_[0-9]+\\.md"
            ]
        )
    );
    assert_eq!(
        search(mp, &["--full-path", "dir1"]),
        find(mp, &["-path", &format!("{}*dir1*", mp.display())])
            .into_iter()
            .filter(|p| p[mp.as_os_str().len()..].contains("dir1"))
            .collect()
    );
}

/// Full paths: a substring across components, a glob, a regex (find matches the whole
/// path, so its patterns start with the mount point).
fn full_paths_equal_find(mp: &Path) {
    let m_str = mp.display().to_string();
    let full_path_cases: [(Vec<&str>, Vec<String>); 4] = [
        (
            vec!["--full-path", "0/report"],
            vec!["-path".into(), format!("{m_str}*0/report*")],
        ),
        (
            vec!["--full-path", "--glob", "*-dir[1-4]*/*.md"],
            vec!["-path".into(), format!("{m_str}*-dir[1-4]*/*.md")],
        ),
        (
            vec!["--full-path", "--glob", "-i", "/*/*REPORT*"],
            vec!["-ipath".into(), format!("{m_str}/*/*REPORT*")],
        ),
        (
            vec![
                "--full-path",
                "--regex",
                "^/[^/]*-dir[0-9]+/[^/]*_[0-9]+\\.txt$",
            ],
            vec![
                "-regextype".into(),
                "posix-extended".into(),
                "-regex".into(),
                format!("{m_str}/[^/]*-dir[0-9]+/[^/]*_[0-9]+\\.txt"),
            ],
        ),
    ];
    for (ours, theirs) in &full_path_cases {
        let theirs: Vec<&str> = theirs.iter().map(String::as_str).collect();
        let want = find(mp, &theirs);
        assert!(!want.is_empty(), "{ours:?} finds something");
        assert_eq!(search(mp, ours), want, "{ours:?}");
    }
}

/// The first number `du` printed.
fn du_total(out: &[u8]) -> u64 {
    String::from_utf8_lossy(out)
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("du output")
}

#[test]
fn search_equals_find_and_follows_changes() {
    let s = Scratch::new();
    let img = s.mkfs("img", "2G");
    let m = Mounted::with_args(&img, &s.path("mnt"), &["--allow-other"]);
    fill_tree(&m.mp);
    let mp = &m.mp;
    names_equal_find(mp);
    full_paths_equal_find(mp);
    assert_eq!(
        search(mp, &["--type", "d", "a"]),
        find(mp, &["-type", "d", "-name", "*a*"])
    );
    assert_eq!(
        search(mp, &["--size", "+4k", "_"]),
        find(mp, &["-size", "+4k", "-name", "*_*"])
    );
    // Live: a file created a moment ago is found; one deleted is not.
    let fresh = m.path("zz-fresh-file");
    std::fs::write(&fresh, b"x").expect("write");
    assert_eq!(search(mp, &["zz-fresh"]).len(), 1);
    std::fs::remove_file(&fresh).expect("rm");
    assert!(search(mp, &["zz-fresh"]).is_empty());
    // Count, limit, -0.
    let o = run(gpufs().arg("search").arg(mp).args(["--count", "report"]));
    let n: usize = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("count");
    assert_eq!(n, find(mp, &["-name", "*report*"]).len());
    assert_eq!(search(mp, &["--limit", "3", "_"]).len(), 3);
    let o = run(gpufs().arg("search").arg(mp).args(["-0", "notes"]));
    assert_eq!(
        o.stdout.iter().filter(|&&b| b == 0).count(),
        find(mp, &["-name", "*notes*"]).len()
    );
    // Bad patterns: exit 2, one clear line, and the daemon keeps serving.
    for bad in [&["--regex", "("][..], &["--glob", "[[:nope:]]"], &[""]] {
        let o = run(gpufs().arg("search").arg(mp).args(bad));
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(!o.stderr.is_empty());
    }
    assert_eq!(search(mp, &["report"]), find(mp, &["-name", "*report*"]));
    // du of the whole tree equals du -s with apparent sizes.
    let o = run(gpufs().args(["du", "-s", "-b", "--apparent-size"]).arg(mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs = run(Command::new("du")
        .args(["-s", "-b", "--apparent-size"])
        .arg(mp));
    assert_eq!(du_total(&o.stdout), du_total(&theirs.stdout));
    let o = run(gpufs().arg("stats").arg(mp).arg("--json"));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stats json");
    assert!(v["compute"]["kernels"]
        .as_array()
        .is_some_and(|k| !k.is_empty()));
    m.unmount();
}

#[test]
fn no_interface_shows_names_a_user_cannot_list() {
    let s = Scratch::new();
    let m = shared_mount(&s);
    let secret = m.path("secret");
    std::fs::create_dir(&secret).expect("mkdir");
    std::fs::write(secret.join("hidden-plan.txt"), b"x").expect("write");
    std::fs::create_dir(secret.join("open")).expect("mkdir");
    std::fs::write(secret.join("open/hidden-too.txt"), b"x").expect("write");
    std::fs::write(m.path("public-plan.txt"), b"x").expect("write");
    chmod(&secret, 0o700);
    let o = run(&mut as_nobody(gpufs().arg("search").arg(&m.mp).arg("plan")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        lines(&o.stdout),
        BTreeSet::from([format!("{}/public-plan.txt", m.mp.display())])
    );
    let o = run(&mut as_nobody(
        gpufs()
            .arg("search")
            .arg(&m.mp)
            .args(["--full-path", "hidden"]),
    ));
    assert!(lines(&o.stdout).is_empty(), "{:?}", lines(&o.stdout));
    let o = run(&mut as_nobody(gpufs().args(["du", "-a"]).arg(&m.mp)));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("open"));
    let o = run(&mut as_nobody(gpufs().arg("du").arg(&secret)));
    assert!(!o.status.success());
    // Root sees all of it.
    assert_eq!(search(&m.mp, &["plan"]).len(), 2);
    m.unmount();
}

#[test]
fn the_search_directory_lists_matches_as_links() {
    let s = Scratch::new();
    let m = shared_mount(&s);
    std::fs::create_dir_all(m.path("a/b")).expect("mkdir");
    std::fs::write(m.path("a/b/photo.JPG"), b"jpeg").expect("write");
    std::fs::write(m.path("a/photo.jpg"), b"jpeg2").expect("write");
    std::fs::write(m.path("notes.txt"), b"n").expect("write");
    std::fs::create_dir(m.path("private")).expect("mkdir");
    std::fs::write(m.path("private/photo-secret.jpg"), b"s").expect("write");
    chmod(&m.path("private"), 0o700);
    // Hidden from the root listing, reachable by name.
    let root: Vec<String> = std::fs::read_dir(&m.mp)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!root.iter().any(|n| n == ".gpufs"), "{root:?}");
    let dir = m.path(".gpufs/search/iglob:*.jpg");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("search dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["photo-secret.jpg", "photo.JPG", "photo.jpg"]);
    // Links lead to the files, wherever the mount is.
    assert_eq!(
        std::fs::read(dir.join("photo.JPG")).expect("through the link"),
        b"jpeg"
    );
    assert_eq!(
        std::fs::read_link(dir.join("photo.jpg")).expect("readlink"),
        Path::new("../../../a/photo.jpg")
    );
    // Live: a new match shows up at the next read.
    std::fs::write(m.path("new.jpg"), b"x").expect("write");
    assert_eq!(std::fs::read_dir(&dir).expect("again").count(), 4);
    // Read-only, and a bad pattern is refused.
    assert!(std::fs::write(dir.join("x"), b"x").is_err());
    assert!(std::fs::read_dir(m.path(".gpufs/search/regex:(")).is_err());
    // Another user sees only what it may list.
    let o = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "ls"])
        .arg(&dir));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs = lines(&o.stdout);
    assert!(!theirs.contains("photo-secret.jpg"), "{theirs:?}");
    assert!(theirs.contains("photo.jpg"));
    m.unmount();
}

/// The text of `search` written into a file `own` on the mount being searched, and
/// appended to what `app` holds, is `want`.
fn into_files(search: &dyn Fn() -> Command, want: &[u8], own: &Path, app: &Path) {
    use std::process::Stdio;
    // Into a file on the mount itself.
    let f = std::fs::File::create(own).expect("create");
    let o = run(search().stdout(Stdio::from(f)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(own).expect("read"), want);
    // Appended after what a file holds.
    std::fs::write(app, b"first\n").expect("write");
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(app)
        .expect("open");
    let o = run(search().stdout(Stdio::from(f)));
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(app).expect("read"),
        [&b"first\n"[..], want].concat()
    );
}

/// Readers that are slow, or do not read yet, get all of `want`, and the mount serves
/// others meanwhile.
fn to_slow_readers(search: &dyn Fn() -> Command, want: &[u8], m: &Mounted) {
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::process::Stdio;
    // A non-blocking pipe whose reader is slow: the daemon waits instead of failing.
    let (mut r, w) = std::io::pipe().expect("pipe");
    nix::fcntl::fcntl(
        w.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .expect("O_NONBLOCK");
    let mut child = search().stdout(Stdio::from(w)).spawn().expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut got = Vec::new();
    r.read_to_end(&mut got).expect("read");
    assert!(child.wait().expect("wait").success());
    assert_eq!(got, want);
    // A reader that does not read yet: other queries and the filesystem go on meanwhile
    // (the answer waits outside the namespace lock, its request on a thread of its own).
    let (mut r, w) = std::io::pipe().expect("pipe");
    let mut stalled = search().stdout(Stdio::from(w)).spawn().expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..6 {
        let o = run(search().arg("--count"));
        assert!(o.status.success());
        assert_eq!(o.stdout, b"20000\n");
    }
    std::fs::write(m.path("d/during.txt"), b"x").expect("write while an answer waits");
    let mut got = Vec::new();
    r.read_to_end(&mut got).expect("read");
    assert!(stalled.wait().expect("wait").success());
    assert_eq!(got, want);
}

/// Plain path output goes to whatever standard output is, written by the daemon
/// itself: a pipe, a file on the mount being searched, a file opened for appending, a
/// non-blocking pipe read slowly, a reader that stops early. The text is the same
/// everywhere and the daemon keeps serving.
#[test]
fn plain_output_reaches_any_standard_output() {
    let s = Scratch::new();
    let img = s.mkfs("img", "2G");
    let m = Mounted::new(&img, &s.path("mnt"));
    std::fs::create_dir(m.path("d")).expect("mkdir");
    // Long names, so the text (about 2.4 MB) overflows even a 1 MiB pipe.
    let pad = "p".repeat(100);
    for i in 0..20_000 {
        let dir = if i % 3 == 0 { "d/" } else { "" };
        std::fs::write(m.path(&format!("{dir}file_{i}_{pad}.txt")), b"").expect("write");
    }
    let search = || {
        let mut c = gpufs();
        c.arg("search").arg(&m.mp).args(["--glob", "file_*"]);
        c
    };
    let piped = run(&mut search());
    assert!(piped.status.success());
    assert_eq!(piped.stdout.iter().filter(|&&b| b == b'\n').count(), 20_000);
    assert!(piped.stdout.len() > 2 << 20);
    into_files(
        &search,
        &piped.stdout,
        &m.path("d/out.txt"),
        &s.path("append.txt"),
    );
    to_slow_readers(&search, &piped.stdout, &m);
    // A reader that stops after one line: no error, and the daemon answers the next.
    let o = run(std::process::Command::new("sh").arg("-c").arg(format!(
        "'{}' search '{}' --glob 'file_*' | head -n 1",
        env!("CARGO_BIN_EXE_gpufs"),
        m.mp.display()
    )));
    assert!(o.status.success());
    assert_eq!(o.stdout.iter().filter(|&&b| b == b'\n').count(), 1);
    let again = run(&mut search());
    assert_eq!(again.stdout, piped.stdout);
}
