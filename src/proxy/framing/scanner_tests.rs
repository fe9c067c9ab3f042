//! Tests of the framing state machine: heads, bodies, chunked framing and the refusals.

use super::*;

/// Feeds `input` in pieces of `piece` bytes; returns what hyper would read and the verdict.
fn run(input: &[u8], piece: usize) -> (Vec<u8>, Vec<Step>) {
    let mut s = Scanner::new(1024);
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut steps = Vec::new();
    for chunk in input.chunks(piece) {
        pending.extend_from_slice(chunk);
        loop {
            match s.step(&pending) {
                Step::Release(n) => {
                    out.extend(pending.drain(..n));
                }
                Step::NeedMore => break,
                r @ Step::Reject(_) => {
                    steps.push(r);
                    return (out, steps);
                }
            }
        }
    }
    (out, steps)
}

const GOOD: &[u8] = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
    POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
    5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n\
    GET /c HTTP/1.1\r\nHost: h\r\n\r\n";

#[test]
fn well_framed_requests_pass_unchanged_in_any_piece_size() {
    for piece in [1, 2, 3, 7, 64, 4096] {
        let (out, steps) = run(GOOD, piece);
        assert_eq!(out, GOOD, "piece size {piece}");
        assert!(steps.is_empty());
    }
}

#[test]
fn content_length_with_transfer_encoding_is_refused_at_its_position() {
    let mut input = GOOD.to_vec();
    input.extend_from_slice(
        b"POST /smuggle HTTP/1.1\r\nHost: h\r\ncontent-length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
    );
    for piece in [1, 5, 4096] {
        let (out, steps) = run(&input, piece);
        assert_eq!(out, GOOD, "piece size {piece}");
        let [Step::Reject(r)] = steps.as_slice() else {
            panic!("{steps:?}")
        };
        assert_eq!(r.index, 3);
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/smuggle"));
        assert_eq!(r.host.as_deref(), Some("h"));
    }
    // Order does not matter.
    let te_first = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n";
    assert!(matches!(
        run(te_first, 4096).1.as_slice(),
        [Step::Reject(_)]
    ));
}

#[test]
fn a_head_smuggled_inside_a_body_is_not_a_head() {
    // The bytes inside the 60-byte body look like a refused head but are body data.
    let body = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut input =
        format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    input.extend_from_slice(body);
    let (out, steps) = run(&input, 3);
    assert_eq!(out, input);
    assert!(steps.is_empty());
}

#[test]
fn oversized_head_is_refused_with_431() {
    let mut input = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    input.extend(std::iter::repeat_n(b'a', 2000));
    for piece in [100, 4096] {
        let (_, steps) = run(&input, piece);
        let [Step::Reject(r)] = steps.as_slice() else {
            panic!("{steps:?}")
        };
        assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(r.index, 0);
    }
    // Complete in one piece, still too long.
    input.extend_from_slice(b"\r\n\r\n");
    assert!(matches!(run(&input, 4096).1.as_slice(), [Step::Reject(_)]));
}

#[test]
fn unparseable_input_is_left_to_hyper() {
    for bad in [
        &b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\nmore"[..],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\nrest",
    ] {
        let (out, steps) = run(bad, 4096);
        assert_eq!(out, bad);
        assert!(steps.is_empty());
    }
}

#[test]
fn chunk_sizes_that_overflow_are_left_to_hyper() {
    let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc";
    let (out, _) = run(input, 4096);
    assert_eq!(out, input);
}

/// Mutated requests in random pieces: the scanner never panics and never releases more
/// bytes than it was given, whatever the input.
#[test]
fn arbitrary_input_never_panics() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet =
        b"\r\n:; 0123456789abcdefxTransfer-Encoding chunked Content-Length GET POST HTTP/1.1";
    for _ in 0..3000 {
        let mut input = GOOD.to_vec();
        for _ in 0..(next() % 12) {
            let at = (next() as usize) % (input.len() + 1);
            match next() % 3 {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 => input.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                _ if at < input.len() => input[at] = (next() % 256) as u8,
                _ => {}
            }
        }
        let piece = 1 + (next() as usize) % 40;
        let (out, _) = run(&input, piece);
        assert!(out.len() <= input.len());
        assert_eq!(
            out,
            input[..out.len()],
            "released bytes are the input's prefix"
        );
    }
}
