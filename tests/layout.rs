//! Keeps the layout of `src/` honest: no import cycle between its top-level modules, no file
//! over 500 lines, and every file opening with a `//!` comment that says what it is for.
//!
//! A top-level module is `src/<name>.rs` or `src/<name>/` (`lib.rs` and `main.rs` are not
//! modules here). Module A depends on module B when any file of A mentions `crate::B`: in a
//! `use` line (also inside `use crate::{a, b::c}` groups) or in a path inline in the code.
//! Comments and string literals do not count. Only the standard library is used.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// The most lines one file in `src/` may have.
const MAX_LINES: usize = 500;

/// Module name → the modules it depends on.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// One file of `src/`: its path relative to the crate root and its text.
struct SourceFile {
    path: String,
    text: String,
}

fn src_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    collect_rs(&root.join("src"), &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "no .rs files found under src/");
    paths
        .into_iter()
        .map(|p| SourceFile {
            text: fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            path: p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/"),
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/tls/status.rs` → `tls`), or `None` for the
/// crate roots `src/lib.rs` and `src/main.rs`.
fn top_module(path: &str) -> Option<String> {
    let rest = path.strip_prefix("src/")?;
    match rest.split_once('/') {
        Some((dir, _)) => Some(dir.to_string()),
        None => match rest.strip_suffix(".rs")? {
            "lib" | "main" => None,
            name => Some(name.to_string()),
        },
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The code of a Rust file with comments, string literals and character literals blanked out
/// (replaced by spaces, newlines kept), so that only real paths are left to look at.
fn code_only(text: &str) -> String {
    let s: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, chars: &[char]| {
        for &c in chars {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = s[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(s.len(), |n| i + n);
            blank(&mut out, &s[i..end]);
            i = end;
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (1, i + 2);
            while j < s.len() && depth > 0 {
                if s[j] == '/' && s.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if s[j] == '*' && s.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &s[i..j]);
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(s.len());
            blank(&mut out, &s[i..end]);
            i = end;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a), which is kept.
            let end = if next == Some('\\') {
                // The escaped character itself may be a quote ('\''), so look past it.
                s.get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&c| c == '\''))
                    .map(|n| i + 3 + n + 1)
            } else if s.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, &s[i..end]);
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else if is_ident_char(c) {
            let start = i;
            while i < s.len() && is_ident_char(s[i]) {
                i += 1;
            }
            let ident: String = s[start..i].iter().collect();
            let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
            if (ident == "r" || ident == "br") && s.get(i + hashes) == Some(&'"') {
                // A raw string: ends at a quote followed by as many hashes.
                let closes = |j: usize| {
                    s[j] == '"'
                        && s.len() > j + hashes
                        && s[j + 1..=j + hashes].iter().all(|&c| c == '#')
                };
                let end = (i + hashes + 1..s.len())
                    .find(|&j| closes(j))
                    .map_or(s.len(), |j| j + 1 + hashes);
                blank(&mut out, &s[start..end]);
                i = end;
            } else {
                out.push_str(&ident);
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The first path segment after every `crate::` in the code, with its 1-based line: for
/// `use crate::{a, b::{c, d}}` that is `a` and `b`. `$crate::` in macros counts too.
fn crate_mentions(code: &str) -> Vec<(String, usize)> {
    let s: Vec<char> = code.chars().collect();
    let line_at = |i: usize| 1 + s[..i].iter().filter(|&&c| c == '\n').count();
    let skip_ws = |mut i: usize| {
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let ident_at =
        |i: usize| -> String { s[i..].iter().take_while(|&&c| is_ident_char(c)).collect() };
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(n) = s[i..]
        .windows(5)
        .position(|w| w == ['c', 'r', 'a', 't', 'e'])
    {
        let start = i + n;
        i = start + 5;
        let joined_before = start > 0 && is_ident_char(s[start - 1]);
        if joined_before || s.get(i).is_some_and(|&c| is_ident_char(c)) {
            continue;
        }
        let mut j = skip_ws(i);
        if !(s.get(j) == Some(&':') && s.get(j + 1) == Some(&':')) {
            continue;
        }
        j = skip_ws(j + 2);
        if s.get(j) == Some(&'{') {
            // A group: the first segment of each item at depth one.
            let mut depth = 0;
            let mut item_start = true;
            while j < s.len() {
                match s[j] {
                    '{' => {
                        depth += 1;
                        item_start = depth == 1;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    c if item_start && depth == 1 && is_ident_char(c) => {
                        let ident = ident_at(j);
                        j += ident.chars().count();
                        found.push((ident, line_at(j)));
                        item_start = false;
                        continue;
                    }
                    _ => item_start = false,
                }
                j += 1;
            }
            i = j;
        } else {
            let ident = ident_at(j);
            if !ident.is_empty() {
                found.push((ident, line_at(j)));
            }
        }
    }
    found
}

/// The dependency graph of the top-level modules, and for each edge where it comes from
/// (`path:line`, every mention).
fn module_graph(files: &[SourceFile]) -> (Graph, BTreeMap<(String, String), Vec<String>>) {
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(&f.path)).collect();
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    let mut evidence: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = top_module(&file.path) else {
            continue;
        };
        for (to, line) in crate_mentions(&code_only(&file.text)) {
            // `crate::error_chain` and the like name items of lib.rs, not modules.
            if to == from || !modules.contains(&to) {
                continue;
            }
            graph.entry(from.clone()).or_default().insert(to.clone());
            evidence
                .entry((from.clone(), to))
                .or_default()
                .push(format!("{}:{line}", file.path));
        }
    }
    (graph, evidence)
}

/// Strongly connected components of more than one module (Tarjan's algorithm): exactly the
/// sets of modules that lie on a cycle together.
fn tangles(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(st: &mut State<'g>, v: &'g str) {
        let n = st.index.len();
        st.index.insert(v, n);
        st.low.insert(v, n);
        st.stack.push(v);
        st.on_stack.insert(v);
        let graph = st.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !st.index.contains_key(w) {
                visit(st, w);
                let low = st.low[v].min(st.low[w]);
                st.low.insert(v, low);
            } else if st.on_stack.contains(w) {
                let low = st.low[v].min(st.index[w]);
                st.low.insert(v, low);
            }
        }
        if st.low[v] == st.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                st.out.push(component);
            }
        }
    }
    let mut st = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    // Edges may name modules that have no entry of their own; visit those too.
    let nodes: BTreeSet<&str> = graph
        .iter()
        .flat_map(|(k, vs)| std::iter::once(k.as_str()).chain(vs.iter().map(String::as_str)))
        .collect();
    for v in nodes {
        if !st.index.contains_key(v) {
            visit(&mut st, v);
        }
    }
    st.out.sort();
    st.out
}

/// The shortest path from `from` to `to` inside `within`, both ends included.
fn shortest_path(
    graph: &Graph,
    within: &BTreeSet<String>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(v) = queue.pop_front() {
        if v == to {
            let mut path = vec![to.to_string()];
            let mut cur = to;
            while cur != from {
                cur = came_from[cur];
                path.push(cur.to_string());
            }
            path.reverse();
            return Some(path);
        }
        for w in graph.get(v).into_iter().flatten() {
            if within.contains(w) && w != from && !came_from.contains_key(w.as_str()) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    None
}

/// Import cycles, each as `[a, b, …, a]` starting at its smallest module: for every edge that
/// lies on a cycle, the shortest cycle through it (so every edge to cut shows up at least once).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found = BTreeSet::new();
    for tangle in tangles(graph) {
        for from in &tangle {
            for to in graph[from].iter().filter(|to| tangle.contains(*to)) {
                let back = shortest_path(graph, &tangle, to, from)
                    .expect("a strongly connected component has a path back");
                let mut cycle: Vec<String> = std::iter::once(from.clone()).chain(back).collect();
                cycle.pop();
                let start = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
                cycle.rotate_left(start);
                cycle.push(cycle[0].clone());
                found.insert(cycle);
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let (graph, evidence) = module_graph(&src_files());
    let cycles = cycles(&graph);
    if cycles.is_empty() {
        return;
    }
    let mut report = format!(
        "{} import cycle(s) between top-level modules of src/ \
         (A -> B: a file of A mentions crate::B):\n",
        cycles.len()
    );
    for cycle in &cycles {
        report.push_str(&format!("  {}\n", cycle.join(" -> ")));
        for pair in cycle.windows(2) {
            let places = &evidence[&(pair[0].clone(), pair[1].clone())];
            let shown: Vec<&str> = places.iter().take(3).map(String::as_str).collect();
            let more = match places.len().saturating_sub(shown.len()) {
                0 => String::new(),
                n => format!(" (+{n} more)"),
            };
            report.push_str(&format!(
                "      {} -> {}: {}{more}\n",
                pair[0],
                pair[1],
                shown.join(", ")
            ));
        }
    }
    for tangle in tangles(&graph) {
        let names: Vec<&str> = tangle.iter().map(String::as_str).collect();
        report.push_str(&format!(
            "  modules on cycles together: {}\n",
            names.join(", ")
        ));
    }
    panic!("{report}");
}

#[test]
fn no_file_over_the_line_limit() {
    let too_long: Vec<String> = src_files()
        .iter()
        .map(|f| (f.path.as_str(), f.text.lines().count()))
        .filter(|&(_, lines)| lines > MAX_LINES)
        .map(|(path, lines)| format!("  {path}: {lines} lines"))
        .collect();
    assert!(
        too_long.is_empty(),
        "{} file(s) in src/ have more than {MAX_LINES} lines:\n{}",
        too_long.len(),
        too_long.join("\n")
    );
}

#[test]
fn every_file_begins_with_a_module_doc_comment() {
    let undocumented: Vec<String> = src_files()
        .iter()
        .filter(|f| !f.text.lines().next().unwrap_or("").starts_with("//!"))
        .map(|f| format!("  {}", f.path))
        .collect();
    assert!(
        undocumented.is_empty(),
        "{} file(s) in src/ do not begin with a `//!` line saying what they are for:\n{}",
        undocumented.len(),
        undocumented.join("\n")
    );
}

// Self-tests of the checks above, on small in-memory inputs.

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for &(from, to) in edges {
        graph.entry(from.into()).or_default().insert(to.into());
        graph.entry(to.into()).or_default();
    }
    graph
}

fn joined(cycles: &[Vec<String>]) -> Vec<String> {
    cycles.iter().map(|c| c.join(" -> ")).collect()
}

#[test]
fn cycle_finder_reports_a_two_cycle() {
    let graph = graph_of(&[
        ("proxy", "listener"),
        ("listener", "proxy"),
        ("proxy", "x509"),
    ]);
    assert_eq!(joined(&cycles(&graph)), ["listener -> proxy -> listener"]);
}

#[test]
fn cycle_finder_reports_a_three_cycle_with_no_two_cycle_in_it() {
    let graph = graph_of(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    assert_eq!(joined(&cycles(&graph)), ["a -> b -> c -> a"]);
    let names: Vec<Vec<String>> = tangles(&graph)
        .into_iter()
        .map(|t| t.into_iter().collect())
        .collect();
    assert_eq!(names, [["a", "b", "c"]]);
}

#[test]
fn cycle_finder_reports_every_edge_of_overlapping_cycles() {
    // b -> a closes a 2-cycle, c -> a a 3-cycle; both share a -> b.
    let graph = graph_of(&[("a", "b"), ("b", "a"), ("b", "c"), ("c", "a")]);
    assert_eq!(joined(&cycles(&graph)), ["a -> b -> a", "a -> b -> c -> a"]);
}

#[test]
fn cycle_finder_accepts_a_dag() {
    // A diamond plus a long chain: many paths, no cycle.
    let graph = graph_of(&[
        ("server", "listener"),
        ("server", "proxy"),
        ("listener", "tls"),
        ("proxy", "tls"),
        ("tls", "x509"),
        ("alb", "x509"),
        ("proxy", "alb"),
        ("server", "x509"),
    ]);
    assert!(cycles(&graph).is_empty(), "{:?}", cycles(&graph));
    assert!(tangles(&graph).is_empty());
    assert!(cycles(&Graph::new()).is_empty());
}

#[test]
fn crate_paths_in_use_groups_and_inline_code_are_found() {
    let text = r##"//! doc mentioning crate::doc_only
use crate::alpha;
use crate::{beta, gamma::{x, y}, delta::z as w};
use crate :: {
    epsilon::{self, Thing},
    // crate::commented_out
    zeta,
};
pub(crate) fn f() -> crate::eta::T {
    let s = "crate::in_string";
    let r = r#"crate::in_raw_string"#;
    let c = ['\'','"', '\\', '\u{22}']; let _l: &'static str = "";
    /* crate::in_block /* nested */ crate::still_comment */
    mycrate::not_this();
    crate::theta::call(crate::error_chain);
    $crate::iota!()
}
"##;
    let found: Vec<String> = crate_mentions(&code_only(text))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        found,
        [
            "alpha",
            "beta",
            "gamma",
            "delta",
            "epsilon",
            "zeta",
            "eta",
            "theta",
            "error_chain",
            "iota"
        ]
    );
}

#[test]
fn files_map_to_their_top_level_module() {
    assert_eq!(top_module("src/tls/status.rs").as_deref(), Some("tls"));
    assert_eq!(
        top_module("src/x509/names/tests.rs").as_deref(),
        Some("x509")
    );
    assert_eq!(top_module("src/listener.rs").as_deref(), Some("listener"));
    assert_eq!(top_module("src/lib.rs"), None);
    assert_eq!(top_module("src/main.rs"), None);

    let files = [
        SourceFile {
            path: "src/proxy/mod.rs".into(),
            text: "use crate::listener::OpenConns;\nfn f() { crate::error_chain(); }".into(),
        },
        SourceFile {
            path: "src/listener.rs".into(),
            text: "use crate::{proxy, listener};".into(),
        },
        SourceFile {
            path: "src/lib.rs".into(),
            text: "pub fn error_chain() { crate::proxy::f() }".into(),
        },
    ];
    let (graph, evidence) = module_graph(&files);
    assert_eq!(joined(&cycles(&graph)), ["listener -> proxy -> listener"]);
    assert_eq!(
        evidence[&("proxy".to_string(), "listener".to_string())],
        ["src/proxy/mod.rs:1"]
    );
}
