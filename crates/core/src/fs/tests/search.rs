//! Live search and du over the namespace: results as of this instant, filtered by what
//! the caller may list.

use gpufs_compute::kernels::name_match::{NameQuery, ALL_KINDS};
use gpufs_compute::kernels::path_build::PathFormat;
use gpufs_compute::Compute;

use super::*;
use crate::fs::{DuRows, SearchQuery};

fn query(pattern: NameQuery) -> SearchQuery {
    SearchQuery {
        pattern,
        full_path: false,
        kinds: ALL_KINDS,
        min_size: None,
        max_size: None,
        newer_ns: None,
        older_ns: None,
        under: None,
        limit: None,
        want_paths: true,
        text: None,
    }
}

pub(super) fn substring(s: &str) -> SearchQuery {
    query(NameQuery::Substring {
        needle: s.as_bytes().to_vec(),
        fold: false,
    })
}

/// The paths `q` finds for `who`, sorted; the streamed text answer
/// ([`Filesystem::search_text`]) must give the same ones.
fn paths(fs: &Filesystem, c: &Compute, q: &SearchQuery, who: Caller) -> Vec<String> {
    let r = fs.search(c, q, who, &[]).unwrap();
    let mut v: Vec<String> = (0..r.len())
        .map(|i| String::from_utf8(r.path(i).to_vec()).unwrap())
        .collect();
    v.sort();
    let mut tq = q.clone();
    tq.text = Some(PathFormat {
        prefix: b"/mnt".to_vec(),
        end: 0,
    });
    let mut text = Vec::new();
    let count = fs
        .search_text(c, &tq, who, &[], &|| 0, &mut |piece| {
            text.extend_from_slice(&piece)
        })
        .unwrap();
    let mut streamed: Vec<String> = text
        .split(|&b| b == 0)
        .filter(|line| !line.is_empty())
        .map(|line| String::from_utf8(line.strip_prefix(b"/mnt").unwrap().to_vec()).unwrap())
        .collect();
    streamed.sort();
    assert_eq!(streamed, v, "streamed text of {q:?}");
    assert_eq!(count, v.len());
    v
}

#[test]
fn finds_what_exists_now_and_not_what_was_deleted() {
    let (_dev, fs) = fresh();
    let c = Compute::cpu_only();
    let a = fs.mkdir(ROOT, b"alpha", 0o755, Caller::ROOT).unwrap();
    let f = fs
        .create(a.ino, b"report-2024.txt", 0o644, Caller::ROOT)
        .unwrap();
    fs.write(f.ino, 0, &[7u8; 5000]).unwrap();
    fs.create(ROOT, b"Report.md", 0o644, Caller::ROOT).unwrap();
    let q = substring("report");
    assert_eq!(
        paths(&fs, &c, &q, Caller::ROOT),
        vec!["/alpha/report-2024.txt"]
    );
    let mut qi = query(NameQuery::Substring {
        needle: b"REPORT".to_vec(),
        fold: true,
    });
    assert_eq!(
        paths(&fs, &c, &qi, Caller::ROOT),
        vec!["/Report.md", "/alpha/report-2024.txt"]
    );
    // Created a moment ago: found. Deleted: gone.
    fs.create(a.ino, b"report-new", 0o644, Caller::ROOT)
        .unwrap();
    assert_eq!(paths(&fs, &c, &q, Caller::ROOT).len(), 2);
    fs.unlink(a.ino, b"report-2024.txt").unwrap();
    assert_eq!(paths(&fs, &c, &q, Caller::ROOT), vec!["/alpha/report-new"]);
    // Filters: size, kind, under, limit.
    qi.min_size = Some(1);
    assert!(paths(&fs, &c, &qi, Caller::ROOT).is_empty());
    let mut dirs = substring("alp");
    dirs.kinds = 1 << FileKind::Directory as u32;
    assert_eq!(paths(&fs, &c, &dirs, Caller::ROOT), vec!["/alpha"]);
    let mut under = substring("report");
    under.under = Some(a.ino);
    assert_eq!(
        paths(&fs, &c, &under, Caller::ROOT),
        vec!["/alpha/report-new"]
    );
    let mut one = query(NameQuery::Glob {
        pattern: b"*".to_vec(),
        fold: false,
    });
    one.limit = Some(1);
    assert_eq!(paths(&fs, &c, &one, Caller::ROOT).len(), 1);
    // Full-path match crosses components.
    let mut full = substring("alpha/rep");
    full.full_path = true;
    assert_eq!(
        paths(&fs, &c, &full, Caller::ROOT),
        vec!["/alpha/report-new"]
    );
    // Bad patterns are typed errors.
    let bad = query(NameQuery::Regex {
        pattern: "(".into(),
        fold: false,
    });
    assert_err!(fs.search(&c, &bad, Caller::ROOT, &[]), FsError::BadQuery(_));
}

#[test]
fn names_in_directories_the_caller_cannot_list_stay_hidden() {
    let (_dev, fs) = fresh();
    let c = Compute::cpu_only();
    let secret = fs.mkdir(ROOT, b"secret", 0o700, Caller::ROOT).unwrap();
    fs.create(secret.ino, b"plan.txt", 0o644, Caller::ROOT)
        .unwrap();
    let deep = fs
        .mkdir(secret.ino, b"deeper", 0o777, Caller::ROOT)
        .unwrap();
    fs.create(deep.ino, b"plan-b.txt", 0o644, Caller::ROOT)
        .unwrap();
    // Listable but not searchable above: a 0o744 parent hides what is below it.
    let nox = fs.mkdir(ROOT, b"nox", 0o744, Caller::ROOT).unwrap();
    let inner = fs.mkdir(nox.ino, b"inner", 0o777, Caller::ROOT).unwrap();
    fs.create(inner.ino, b"plan-c.txt", 0o644, Caller::ROOT)
        .unwrap();
    fs.create(ROOT, b"plan-public.txt", 0o644, USER).unwrap();
    let q = substring("plan");
    assert_eq!(paths(&fs, &c, &q, Caller::ROOT).len(), 4);
    assert_eq!(paths(&fs, &c, &q, USER), vec!["/plan-public.txt"]);
    // The directory itself is visible (root is listable), its contents are not.
    assert_eq!(paths(&fs, &c, &substring("secret"), USER), vec!["/secret"]);
    assert_eq!(
        paths(&fs, &c, &substring("inner"), USER),
        vec!["/nox/inner"]
    );
    // du hides what the caller cannot list, too.
    let all = fs.du(&c, ROOT, DuRows::All, Caller::ROOT, &[]).unwrap();
    let user = fs.du(&c, ROOT, DuRows::All, USER, &[]).unwrap();
    assert_eq!(all[0].totals.files, 4);
    assert_eq!(user[0].totals.files, 1);
    assert!(user.iter().all(|e| !e.path.starts_with(b"/secret/")));
    assert_err!(
        fs.du(&c, secret.ino, DuRows::Children, USER, &[]),
        FsError::Access
    );
}

#[test]
fn du_matches_a_walk() {
    let (_dev, fs) = fresh();
    let c = Compute::cpu_only();
    let a = fs.mkdir(ROOT, b"a", 0o755, Caller::ROOT).unwrap();
    let b = fs.mkdir(a.ino, b"b", 0o755, Caller::ROOT).unwrap();
    for (dir, name, len) in [(ROOT, "x", 10usize), (a.ino, "y", 70_000), (b.ino, "z", 3)] {
        let f = fs
            .create(dir, name.as_bytes(), 0o644, Caller::ROOT)
            .unwrap();
        fs.write(f.ino, 0, &vec![1u8; len]).unwrap();
    }
    // Allocated bytes are those of placed records: the commit places the buffered ones.
    fs.sync().unwrap();
    let du = fs
        .du(&c, a.ino, DuRows::Children, Caller::ROOT, &[])
        .unwrap();
    let by_path: std::collections::HashMap<String, _> = du
        .iter()
        .map(|e| (String::from_utf8(e.path.clone()).unwrap(), e.totals))
        .collect();
    assert_eq!(by_path.len(), 2);
    let ta = by_path["/a"];
    assert_eq!(ta.files, 2);
    assert_eq!(ta.dirs, 2);
    let dir_sizes = fs.getattr(a.ino).unwrap().size + fs.getattr(b.ino).unwrap().size;
    assert_eq!(ta.bytes, 70_003 + dir_sizes);
    assert_eq!(by_path["/a/b"].files, 1);
    assert!(ta.allocated >= 70_003);
    let root = fs
        .du(&c, ROOT, DuRows::Children, Caller::ROOT, &[])
        .unwrap();
    assert_eq!(root[0].path, b"/");
    assert_eq!(root[0].totals.files, 3);
    // The directory alone, and every directory below, found from the parent links.
    let only = fs.du(&c, a.ino, DuRows::Dir, Caller::ROOT, &[]).unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!((only[0].path.as_slice(), only[0].totals), (&b"/a"[..], ta));
    let every = |fs: &Filesystem| -> Vec<Vec<u8>> {
        let mut p: Vec<Vec<u8>> = fs
            .du(&c, ROOT, DuRows::All, Caller::ROOT, &[])
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        p.sort();
        p
    };
    assert_eq!(
        every(&fs),
        vec![b"/".to_vec(), b"/a".to_vec(), b"/a/b".to_vec()]
    );
    fs.rename(a.ino, b"b", ROOT, b"b2", RenameMode::Replace)
        .unwrap();
    assert_eq!(
        every(&fs),
        vec![b"/".to_vec(), b"/a".to_vec(), b"/b2".to_vec()]
    );
}

/// Paths come from the directory tree the namespace keeps between queries: each query
/// after a directory is made, renamed, moved or removed sees the tree as it is now.
#[test]
fn kept_directory_paths_follow_directory_changes() {
    let (_dev, fs) = fresh();
    let c = Compute::cpu_only();
    let a = fs.mkdir(ROOT, b"a", 0o755, Caller::ROOT).unwrap();
    let b = fs.mkdir(a.ino, b"b", 0o755, Caller::ROOT).unwrap();
    fs.create(b.ino, b"note.txt", 0o644, Caller::ROOT).unwrap();
    let q = substring("note");
    let mut full = substring("a/b/no");
    full.full_path = true;
    assert_eq!(paths(&fs, &c, &q, Caller::ROOT), vec!["/a/b/note.txt"]);
    assert_eq!(paths(&fs, &c, &full, Caller::ROOT), vec!["/a/b/note.txt"]);
    // A file made between queries changes no directory path.
    fs.create(a.ino, b"note-2", 0o644, Caller::ROOT).unwrap();
    assert_eq!(
        paths(&fs, &c, &q, Caller::ROOT),
        vec!["/a/b/note.txt", "/a/note-2"]
    );
    // Renamed directory.
    fs.rename(a.ino, b"b", a.ino, b"c", RenameMode::Replace)
        .unwrap();
    assert_eq!(
        paths(&fs, &c, &q, Caller::ROOT),
        vec!["/a/c/note.txt", "/a/note-2"]
    );
    assert!(paths(&fs, &c, &full, Caller::ROOT).is_empty());
    // Moved to another parent.
    let z = fs.mkdir(ROOT, b"z", 0o755, Caller::ROOT).unwrap();
    fs.rename(a.ino, b"c", z.ino, b"c", RenameMode::Replace)
        .unwrap();
    let mut moved = substring("z/c/no");
    moved.full_path = true;
    assert_eq!(paths(&fs, &c, &moved, Caller::ROOT), vec!["/z/c/note.txt"]);
    // Removed, and a new directory of the same name made elsewhere.
    fs.unlink(b.ino, b"note.txt").unwrap();
    fs.rmdir(z.ino, b"c").unwrap();
    let b2 = fs.mkdir(ROOT, b"c", 0o755, Caller::ROOT).unwrap();
    fs.create(b2.ino, b"note.md", 0o644, Caller::ROOT).unwrap();
    assert_eq!(
        paths(&fs, &c, &q, Caller::ROOT),
        vec!["/a/note-2", "/c/note.md"]
    );
    assert!(paths(&fs, &c, &moved, Caller::ROOT).is_empty());
    // A directory made right after a query, with no other change between.
    let d = fs.mkdir(b2.ino, b"d", 0o755, Caller::ROOT).unwrap();
    fs.create(d.ino, b"note.d", 0o644, Caller::ROOT).unwrap();
    assert_eq!(
        paths(&fs, &c, &q, Caller::ROOT),
        vec!["/a/note-2", "/c/d/note.d", "/c/note.md"]
    );
}

/// Enough names for every piece of the arena scan, in directories some callers may not
/// list: the streamed answer (pieces on every core, then on one) hides what
/// `search` hides and finds what it finds, for names and full paths, with filters.
#[test]
fn streamed_answers_equal_whole_ones_over_many_names() {
    let (_dev, fs) = fresh_sized(256 << 20);
    let c = Compute::cpu_only();
    let open = fs.mkdir(ROOT, b"photos", 0o755, Caller::ROOT).unwrap();
    let closed = fs.mkdir(ROOT, b"private", 0o700, Caller::ROOT).unwrap();
    let mine = fs.mkdir(ROOT, b"mine", 0o700, USER).unwrap();
    let sub = fs.mkdir(open.ino, b"2024", 0o755, Caller::ROOT).unwrap();
    let dirs = [
        (open.ino, Caller::ROOT),
        (closed.ino, Caller::ROOT),
        (mine.ino, USER),
        (sub.ino, Caller::ROOT),
    ];
    for i in 0..6000u32 {
        let (dir, who) = dirs[(i % 4) as usize];
        let name = match i % 3 {
            0 => format!("IMG_{i:05}.jpg"),
            1 => format!("notes-{i}.txt"),
            _ => format!("IMG_{i:05}.png"),
        };
        let f = fs.create(dir, name.as_bytes(), 0o644, who).unwrap();
        if i % 7 == 0 {
            fs.write(f.ino, 0, &[1u8; 100]).unwrap();
        }
    }
    let glob = query(NameQuery::Glob {
        pattern: b"*.jpg".to_vec(),
        fold: false,
    });
    assert_eq!(paths(&fs, &c, &glob, Caller::ROOT).len(), 2000);
    // USER lists photos, photos/2024 and its own directory: three quarters.
    assert_eq!(paths(&fs, &c, &glob, USER).len(), 1500);
    let mut sized = glob.clone();
    sized.min_size = Some(1);
    let written = (0..6000u32)
        .filter(|i| i % 3 == 0 && i % 4 != 1 && i % 7 == 0)
        .count();
    assert_eq!(paths(&fs, &c, &sized, USER).len(), written);
    let mut under = glob.clone();
    under.under = Some(open.ino);
    assert_eq!(paths(&fs, &c, &under, USER).len(), 1000);
    let mut full = substring("photos/IMG");
    full.full_path = true;
    assert_eq!(paths(&fs, &c, &full, USER).len(), 1000);
    let mut regex = query(NameQuery::Regex {
        pattern: "^IMG_0[0-4].*png$".into(),
        fold: false,
    });
    regex.kinds = 1 << FileKind::Regular as u32;
    paths(&fs, &c, &regex, USER);
    paths(&fs, &c, &substring("notes"), Caller::ROOT);
}
