//! The per-line hot loop of cloudfront-opens' standard and real-time log decoders.
//!
//! Only the success path lives here: a line either becomes a `Hit` (built by the Python
//! `new_hit`), `None` (a request for another path with `pixel_only`), or the caller's
//! `defer` sentinel, and then the pure-Python reference decoder handles that line. Every
//! failure, header, JSON line, invalid UTF-8, percent-encoded text that does not decode to
//! valid UTF-8, and rare layout goes through Python, so bad lines get exactly the same
//! reasons and counts as the reference. Classification stays in Python, cached here per raw
//! user agent.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PySet, PyString, PyTuple, PyType};
use rustc_hash::FxHashMap as HashMap;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const AGENT_CACHE_LIMIT: usize = 65_536;
const INTERN_LIMIT: usize = 16_384;
const HIT_FIELDS: usize = 24;
/// Keys of `Hit.to_json_dict()` (DESIGN §4): every slot but `rules_version` and `signals`.
const JSON_FIELDS: usize = 22;

/// Builds `Hit` objects without a Python call: allocate the type, store the 24 slot values.
///
/// `new_hit` (a Python function) costs more than decoding the whole line in Rust. A `__slots__`
/// object stores each slot as an object pointer at a fixed offset; the offsets are located at
/// start-up on a probe `Hit` that `new_hit` itself built (each of its 24 distinct values is
/// looked for in the object's memory). If any is not found, `new_hit` is called as before.
struct HitMaker {
    hit_type: Py<PyType>,
    offsets: Option<[usize; HIT_FIELDS]>,
    new_hit: PyObject,
}

impl HitMaker {
    fn new(py: Python<'_>, new_hit: PyObject) -> PyResult<Self> {
        let probe_values: Vec<PyObject> = (0..HIT_FIELDS)
            .map(|i| {
                PyString::new(py, &format!("opens-native-probe-{i}"))
                    .into_any()
                    .unbind()
            })
            .collect();
        let probe = new_hit.call1(py, PyTuple::new(py, probe_values.iter())?)?;
        let hit_type = probe.bind(py).get_type().unbind();
        let basic: usize = hit_type.bind(py).getattr("__basicsize__")?.extract()?;
        let mut offsets = [0usize; HIT_FIELDS];
        let mut ok = true;
        let base = probe.as_ptr() as *const u8;
        for (i, value) in probe_values.iter().enumerate() {
            let want = value.as_ptr() as usize;
            let word = std::mem::size_of::<usize>();
            // Slots follow the object header; scan every pointer-sized word of the instance.
            let found = (word..basic).step_by(word).find(|&off| {
                // SAFETY: off < __basicsize__, inside the live probe object, word aligned.
                unsafe { (base.add(off) as *const usize).read() == want }
            });
            match found {
                Some(off) => offsets[i] = off,
                None => ok = false,
            }
        }
        Ok(Self {
            hit_type,
            offsets: ok.then_some(offsets),
            new_hit,
        })
    }

    fn make(&self, py: Python<'_>, args: [PyObject; HIT_FIELDS]) -> PyResult<PyObject> {
        let Some(offsets) = self.offsets else {
            return self.new_hit.call1(py, PyTuple::new(py, args)?);
        };
        // SAFETY: `tp_alloc` returns a zeroed instance of the heap type `Hit` (GC-tracked; a
        // NULL slot is skipped by its traverse); every offset was verified to be one of its
        // object slots, and each stored pointer carries the reference `into_ptr` gives up.
        unsafe {
            let tp = self.hit_type.as_ptr() as *mut pyo3::ffi::PyTypeObject;
            let alloc = pyo3::ffi::PyType_GetSlot(tp, pyo3::ffi::Py_tp_alloc);
            if alloc.is_null() {
                return self.new_hit.call1(py, PyTuple::new(py, args)?);
            }
            let alloc: pyo3::ffi::allocfunc = std::mem::transmute(alloc);
            let obj = alloc(tp, 0);
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            let base = obj as *mut u8;
            for (value, off) in args.into_iter().zip(offsets) {
                (base.add(off) as *mut *mut pyo3::ffi::PyObject).write(value.into_ptr());
            }
            // A Hit holds only str, int, float and None: it can never be part of a reference
            // cycle, so the cycle collector need not visit it (CPython untracks tuples of
            // atomic values the same way). Saves a third of the time on large batches.
            pyo3::ffi::PyObject_GC_UnTrack(obj as *mut std::ffi::c_void);
            Ok(PyObject::from_owned_ptr(py, obj))
        }
    }
}

/// Shared Python strings for low-cardinality values (method, path, edge, country, cat, cid):
/// one object per distinct value instead of one allocation per line.
#[derive(Default)]
struct Interner {
    map: HashMap<String, Py<PyString>>,
}

impl Interner {
    fn get(&mut self, py: Python<'_>, v: &str) -> PyObject {
        if let Some(found) = self.map.get(v) {
            return found.clone_ref(py).into_any();
        }
        if self.map.len() >= INTERN_LIMIT {
            self.map.clear();
        }
        let obj = PyString::new(py, v).unbind();
        self.map.insert(v.to_owned(), obj.clone_ref(py));
        obj.into_any()
    }
}

// ---------------------------------------------------------------------------------------------
// Pure decoding helpers (mirror processor/core/text.py, clock.py, pixel.py)
// ---------------------------------------------------------------------------------------------

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `urllib.parse.unquote`; `None` when the decoded bytes are not valid UTF-8 (Python would
/// insert U+FFFD there: the caller defers such a line to Python).
fn unquote(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// One form value: `+` is a space, then percent-decode (`unquote_plus`).
fn form_value(s: &str) -> Option<Cow<'_, str>> {
    if s.contains('+') {
        let spaced = s.replace('+', " ");
        return unquote(&spaced).map(|c| Cow::Owned(c.into_owned()));
    }
    unquote(s)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` → epoch ms of midnight UTC (only this form; Python handles the rest).
fn date_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (ys, ms, ds) = (&s[0..4], &s[5..7], &s[8..10]);
    if !(all_digits(ys) && all_digits(ms) && all_digits(ds)) {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (ys.parse().ok()?, ms.parse().ok()?, ds.parse().ok()?);
    if y < 1 || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000)
}

/// Three digits of a fraction, right-padded: `(frac + "00")[:3]`.
fn frac_ms(frac: &str) -> i64 {
    let mut ms = 0i64;
    let b = frac.as_bytes();
    for k in 0..3 {
        ms = ms * 10 + if k < b.len() { (b[k] - b'0') as i64 } else { 0 };
    }
    ms
}

/// `HH:MM:SS[.fff]` → ms of the day (`StandardClock.time_ms`).
fn time_ms(s: &str) -> Option<i64> {
    let (head, frac) = match s.find('.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let b = head.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' || !head.is_ascii() {
        return None;
    }
    let (hh, mm, ss) = (&head[0..2], &head[3..5], &head[6..8]);
    if !(all_digits(hh) && all_digits(mm) && all_digits(ss)) {
        return None;
    }
    let (h, m, sec): (i64, i64, i64) = (hh.parse().ok()?, mm.parse().ok()?, ss.parse().ok()?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut ms = (h * 3600 + m * 60 + sec) * 1000;
    if !frac.is_empty() {
        if !all_digits(frac) {
            return None;
        }
        ms += frac_ms(frac);
    }
    Some(ms)
}

/// 9999-12-31T23:59:59.999Z (`clock.MAX_EPOCH_MS`): later instants are Python's to judge.
const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

/// Real-time `timestamp` (`1607374321.541`) → epoch ms (`epoch_ms_from_seconds_text`);
/// `None` (defer to Python) when malformed or past `MAX_EPOCH_MS`.
fn seconds_text_ms(s: &str) -> Option<i64> {
    let (whole, frac) = match s.find('.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    if !all_digits(whole) || whole.len() > 12 {
        return None;
    }
    let w: i64 = whole.parse().ok()?;
    if frac.is_empty() {
        return Some(w * 1000).filter(|ms| *ms <= MAX_EPOCH_MS);
    }
    if !all_digits(frac) {
        return None;
    }
    Some(w * 1000 + frac_ms(frac)).filter(|ms| *ms <= MAX_EPOCH_MS)
}

/// `int(v) if v.isdigit() and v.isascii() else 0`; `None` (defer) past i64 range.
fn int_or_zero(v: &str) -> Option<i64> {
    if !all_digits(v) {
        return Some(0);
    }
    if v.len() > 18 {
        return None;
    }
    v.parse().ok()
}

/// `float(t) if t.replace(".", "", 1).isdigit() and t.isascii() else 0.0`.
fn float_or_zero(t: &str) -> Option<f64> {
    if !t.is_ascii() {
        return Some(0.0);
    }
    let stripped: Cow<str> = match t.find('.') {
        Some(i) => Cow::Owned(format!("{}{}", &t[..i], &t[i + 1..])),
        None => Cow::Borrowed(t),
    };
    if !all_digits(&stripped) {
        return Some(0.0);
    }
    if t.len() > 40 {
        return None;
    }
    t.parse().ok()
}

/// The /24 of a dotted quad exactly as `inet_pton` accepts it (no leading zeros), else `None`.
fn truncate_v4(ip: &str) -> Option<&str> {
    let mut parts = 0;
    for octet in ip.split('.') {
        parts += 1;
        let b = octet.as_bytes();
        if b.is_empty() || b.len() > 3 || !all_digits(octet) || (b.len() > 1 && b[0] == b'0') {
            return None;
        }
        if octet.parse::<u32>().ok()? > 255 {
            return None;
        }
    }
    if parts != 4 {
        return None;
    }
    Some(&ip[..ip.rfind('.')?])
}

/// Field boundaries of `line.split("\t", maxsplit)` into `out` (reused between lines).
fn split_tabs(line: &str, maxsplit: usize, out: &mut Vec<(usize, usize)>) {
    out.clear();
    let mut from = 0;
    for cut in memchr::memchr_iter(b'\t', line.as_bytes()) {
        if out.len() == maxsplit {
            break;
        }
        out.push((from, cut));
        from = cut + 1;
    }
    out.push((from, line.len()));
}

/// A dotted-quad IPv4 address as `truncate_v4` accepts it (strict: no leading zeros).
fn parse_v4(ip: &str) -> Option<u32> {
    truncate_v4(ip)?;
    let mut n: u32 = 0;
    for octet in ip.split('.') {
        n = (n << 8) | octet.parse::<u32>().ok()?;
    }
    Some(n)
}

impl Fast {
    /// The person's tag when the request cannot meet a network rule, else `None` (ask Python).
    fn person(
        &mut self,
        py: Python<'_>,
        proxy: PyObject,
        f: &Fields<'_>,
    ) -> PyResult<Option<[PyObject; 5]>> {
        if f.method == "HEAD" || !f.referer.is_empty() || (!f.asn.is_empty() && !all_digits(f.asn))
        {
            return Ok(None);
        }
        if !f.ip.is_empty() {
            let Some(n) = parse_v4(f.ip) else {
                return Ok(None);
            };
            if self.v4_keys.bind(py).contains(n >> 16)? {
                return Ok(None);
            }
        }
        if !f.asn.is_empty() && self.asns.bind(py).contains(f.asn)? {
            return Ok(None);
        }
        if self.signals.len() >= INTERN_LIMIT {
            self.signals.clear();
        }
        let signals = match self.signals.get(f.asn) {
            Some(s) => s.clone_ref(py),
            None => {
                let text = if f.asn.is_empty() {
                    String::new()
                } else {
                    format!("as{}", f.asn)
                };
                let s = PyString::new(py, &text).into_any().unbind();
                self.signals.insert(f.asn.to_owned(), s.clone_ref(py));
                s
            }
        };
        Ok(Some([
            py.None(),
            proxy,
            self.empty.clone_ref(py),
            self.rules_version.clone_ref(py),
            signals,
        ]))
    }
}

/// A record whose text could hold a prefetch header (`Sec-Purpose`, `Purpose`, `X-Purpose`,
/// `X-Moz`, any case): the reference decides it (`text.prefetch_header`).
fn may_name_prefetch(line: &str) -> bool {
    let b = line.as_bytes();
    let has = |needle: &[u8]| {
        b.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    has(b"purpose") || has(b"x-moz")
}

fn dash(v: &str) -> &str {
    if v == "-" {
        ""
    } else {
        v
    }
}

struct PixelQuery {
    sid: Option<String>,
    cid: Option<String>,
    cat: String,
    sig: Option<String>,
    legacy: bool,
}

#[derive(Default)]
struct Found {
    sid: Option<String>,
    cid: Option<String>,
    cat: Option<String>,
    sig: Option<String>,
    subscriber: Option<String>,
    category: Option<String>,
    extra: Option<String>,
}

impl Found {
    fn slot(&mut self, key: &str, legacy: &str) -> Option<&mut Option<String>> {
        Some(match key {
            "sid" => &mut self.sid,
            "cid" => &mut self.cid,
            "cat" => &mut self.cat,
            "sig" => &mut self.sig,
            "subscriber" => &mut self.subscriber,
            "category" => &mut self.category,
            k if k == legacy => &mut self.extra,
            _ => return None,
        })
    }

    fn get(&self, key: &str) -> &Option<String> {
        match key {
            "sid" => &self.sid,
            "cid" => &self.cid,
            "cat" => &self.cat,
            "sig" => &self.sig,
            "subscriber" => &self.subscriber,
            "category" => &self.category,
            _ => &self.extra,
        }
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// `pixel_query_values` on an already CloudFront-decoded query; `None` = defer.
fn pixel_query(query: &str, legacy: &str) -> Option<PixelQuery> {
    let decode = query.contains('%') || query.contains('+');
    let mut found = Found::default();
    for part in query.split('&') {
        let (k, v) = match part.find('=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, ""),
        };
        let key = if decode {
            form_value(k)?
        } else {
            Cow::Borrowed(k)
        };
        if let Some(slot) = found.slot(&key, legacy) {
            if slot.is_none() {
                *slot = Some(if decode {
                    form_value(v)?.into_owned()
                } else {
                    v.to_owned()
                });
            }
        }
    }
    if found.sid.is_none() && found.subscriber.is_some() {
        let cid = non_empty(found.get(legacy).clone());
        return Some(PixelQuery {
            sid: non_empty(found.subscriber),
            cid,
            cat: found.category.unwrap_or_default(),
            sig: None,
            legacy: true,
        });
    }
    Some(PixelQuery {
        sid: non_empty(found.sid),
        cid: non_empty(found.cid),
        cat: found.cat.unwrap_or_default(),
        sig: found.sig,
        legacy: false,
    })
}

#[derive(Clone, Copy)]
enum Sig {
    Valid,
    Missing,
    Invalid,
}

fn verify(keys: &[HmacSha256], sid: &str, cid: &str, cat: &str, sig: &str) -> Sig {
    if sig.is_empty() || keys.is_empty() {
        return Sig::Missing;
    }
    if !sig.is_ascii() || sig.len() != 22 {
        return Sig::Invalid;
    }
    let mut msg = String::with_capacity(5 + sid.len() + cid.len() + cat.len());
    for (part, text) in [("v1\n", sid), ("\n", cid), ("\n", cat)] {
        msg.push_str(part);
        msg.push_str(text);
    }
    for key in keys {
        let mut mac = key.clone();
        mac.update(msg.as_bytes());
        let digest = mac.finalize().into_bytes();
        let expected = URL_SAFE_NO_PAD.encode(&digest[..16]);
        // Constant-time comparison, as hmac.compare_digest in the reference.
        let diff = expected
            .as_bytes()
            .iter()
            .zip(sig.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            return Sig::Valid;
        }
    }
    Sig::Invalid
}

// ---------------------------------------------------------------------------------------------
// The shared builder (mirrors processor/core/builder.py HitBuilder.build)
// ---------------------------------------------------------------------------------------------

/// The string columns of `hits` in `HIT_COLUMNS` order, without `ts`, `status`, `bytes` and
/// `time_taken`: request_id, source, sid, cid, cat, signature, method, uri, edge_location,
/// client_ip, country, user_agent, client, device, machine, referer, proxy, certainty,
/// rules_version, signals.
const STRING_COLUMNS: usize = 20;

/// Countable hits as Arrow-layout columns (UTF-8 bytes + i64 offsets per string column): the
/// backfill's `--direct` path inserts them without one Python object per hit.
#[derive(Default)]
struct Columns {
    rows: usize,
    data: [Vec<u8>; STRING_COLUMNS],
    offsets: [Vec<i64>; STRING_COLUMNS],
    ts: Vec<i64>,
    status: Vec<u16>,
    nbytes: Vec<u64>,
    taken: Vec<f32>,
}

impl Columns {
    fn push(
        &mut self,
        texts: [&str; STRING_COLUMNS],
        ts: i64,
        status: u16,
        nbytes: u64,
        taken: f32,
    ) {
        for ((data, offsets), text) in self.data.iter_mut().zip(&mut self.offsets).zip(texts) {
            if offsets.is_empty() {
                offsets.push(0);
            }
            data.extend_from_slice(text.as_bytes());
            offsets.push(data.len() as i64);
        }
        self.ts.push(ts);
        self.status.push(status);
        self.nbytes.push(nbytes);
        self.taken.push(taken);
        self.rows += 1;
    }

    /// `(rows, [(offsets, data)] * 20, ts, status, bytes, time_taken)`, little-endian buffers;
    /// empties `self`.
    fn take<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let taken = std::mem::take(self);
        let le = |b: Vec<u8>| PyBytes::new(py, &b).into_any();
        let strings: Vec<Bound<'py, PyTuple>> = taken
            .data
            .into_iter()
            .zip(taken.offsets)
            .map(|(data, mut offsets)| {
                if offsets.is_empty() {
                    offsets.push(0);
                }
                let offsets: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
                PyTuple::new(py, [le(offsets), le(data)])
            })
            .collect::<PyResult<_>>()?;
        let bytes_of = |v: Vec<u8>| le(v);
        PyTuple::new(
            py,
            [
                taken.rows.into_pyobject(py)?.into_any(),
                PyList::new(py, strings)?.into_any(),
                bytes_of(taken.ts.iter().flat_map(|v| v.to_le_bytes()).collect()),
                bytes_of(taken.status.iter().flat_map(|v| v.to_le_bytes()).collect()),
                bytes_of(taken.nbytes.iter().flat_map(|v| v.to_le_bytes()).collect()),
                bytes_of(taken.taken.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ],
        )
    }
}

struct Agent {
    info: PyObject,
    /// `AgentInfo.proxy`, for the person's tag the core builds itself (`Fast`).
    proxy: PyObject,
    user_agent: PyObject,
    client: PyObject,
    device: PyObject,
    plain: bool,
    /// `user_agent`, `client`, `device` as text, for the column emitter.
    texts: [String; 3],
}

/// The pixel query's values with the signature judged (`HitBuilder.build`'s first half).
struct Pixel {
    sid: Option<String>,
    cid: Option<String>,
    cat: String,
    sig: Sig,
}

impl Sig {
    fn text(self) -> &'static str {
        match self {
            Sig::Valid => "valid",
            Sig::Missing => "missing",
            Sig::Invalid => "invalid",
        }
    }
}

/// The values a format extracted, `-` already stripped except `raw_agent`.
struct Fields<'a> {
    rid: &'a str,
    ts_ms: i64,
    method: &'a str,
    status: i64,
    path: &'a str,
    query: &'a str,
    ip: &'a str,
    raw_agent: &'a str,
    referer: &'a str,
    edge: &'a str,
    country: &'a str,
    asn: &'a str,
    nbytes: i64,
    taken: f64,
    pixel: bool,
}

enum Out {
    Hit(PyObject),
    Skip,
    Defer,
}

struct Builder {
    defer: PyObject,
    pixel_path: String,
    pixel_only: bool,
    escaped: bool,
    legacy: String,
    keys: Vec<HmacSha256>,
    truncate: bool,
    source: PyObject,
    valid: PyObject,
    missing: PyObject,
    invalid: PyObject,
    agent_fn: PyObject,
    machine_fn: PyObject,
    ip_fn: PyObject,
    hits: HitMaker,
    agents: HashMap<String, Agent>,
    strings: Interner,
    source_text: &'static str,
    /// `HIT_METHODS` and `HIT_STATUSES` (`Hit.is_hit`), set by `set_countable`.
    hit_methods: Vec<String>,
    hit_statuses: Vec<i64>,
    /// `Classifier.tag`'s person case decided here (`set_fast_path`), else `None`.
    fast: Option<Fast>,
}

/// What `Classifier.tag` decides without its network rules: a plain agent's GET without referer
/// from an IPv4 address outside `v4_keys` (/16 networks holding a listed prefix) and a numeric
/// AS outside `asns` is a person, `(None, proxy, "", rules_version, "as<asn>")`. Both sets are
/// the classifier's own Python sets, updated in place when it reloads its lists.
struct Fast {
    v4_keys: Py<PySet>,
    asns: Py<PySet>,
    rules_version: PyObject,
    empty: PyObject,
    signals: HashMap<String, PyObject>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        defer: PyObject,
        source: &'static str,
        pixel_path: String,
        pixel_only: bool,
        escaped: bool,
        legacy: String,
        secrets: Vec<Vec<u8>>,
        ip_privacy: &str,
        agent_fn: PyObject,
        machine_fn: PyObject,
        ip_fn: PyObject,
        new_hit: PyObject,
    ) -> PyResult<Self> {
        let keys = secrets
            .iter()
            .map(|s| {
                HmacSha256::new_from_slice(s)
                    .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let s = |v: &str| PyString::new(py, v).into_any().unbind();
        Ok(Self {
            defer,
            pixel_path,
            pixel_only,
            escaped,
            legacy,
            keys,
            truncate: ip_privacy == "truncate",
            source: s(source),
            valid: s("valid"),
            missing: s("missing"),
            invalid: s("invalid"),
            agent_fn,
            machine_fn,
            ip_fn,
            hits: HitMaker::new(py, new_hit)?,
            agents: HashMap::default(),
            strings: Interner::default(),
            source_text: source,
            hit_methods: Vec::new(),
            hit_statuses: Vec::new(),
            fast: None,
        })
    }

    fn set_fast_path(
        &mut self,
        py: Python<'_>,
        v4_keys: Py<PySet>,
        asns: Py<PySet>,
        rules_version: PyObject,
    ) {
        self.fast = Some(Fast {
            v4_keys,
            asns,
            rules_version,
            empty: PyString::new(py, "").into_any().unbind(),
            signals: HashMap::default(),
        });
    }

    /// `HitBuilder.is_pixel_path`; `None` = defer.
    fn is_pixel(&self, path: &str) -> Option<bool> {
        if path == self.pixel_path {
            return Some(true);
        }
        if !path.contains('%') {
            return Some(false);
        }
        Some(unquote(path)? == self.pixel_path.as_str())
    }

    /// `(info, user_agent, client, device, proxy if rule is None)` for a raw agent, one map
    /// lookup.
    #[allow(clippy::type_complexity)]
    fn agent(
        &mut self,
        py: Python<'_>,
        raw: &str,
    ) -> PyResult<(PyObject, PyObject, PyObject, PyObject, Option<PyObject>)> {
        let parts = |a: &Agent| {
            let c = |o: &PyObject| o.clone_ref(py);
            (
                c(&a.info),
                c(&a.user_agent),
                c(&a.client),
                c(&a.device),
                a.plain.then(|| c(&a.proxy)),
            )
        };
        if let Some(found) = self.agents.get(raw) {
            return Ok(parts(found));
        }
        if self.agents.len() >= AGENT_CACHE_LIMIT {
            self.agents.clear();
        }
        let info = self.agent_fn.call1(py, (raw,))?;
        let b = info.bind(py);
        let (user_agent, client, device) = (
            b.getattr("user_agent")?,
            b.getattr("client")?,
            b.getattr("device")?,
        );
        let agent = Agent {
            texts: [user_agent.extract()?, client.extract()?, device.extract()?],
            user_agent: user_agent.unbind(),
            client: client.unbind(),
            device: device.unbind(),
            plain: b.getattr("rule")?.is_none(),
            proxy: b.getattr("proxy")?.unbind(),
            info,
        };
        let out = parts(&agent);
        self.agents.insert(raw.to_owned(), agent);
        Ok(out)
    }

    /// The pixel query's values, signature judged; `None` = defer.
    fn pixel(&self, f: &Fields<'_>) -> Option<Pixel> {
        if !f.pixel || f.query.is_empty() {
            return Some(Pixel {
                sid: None,
                cid: None,
                cat: String::new(),
                sig: Sig::Missing,
            });
        }
        let query = if self.escaped {
            unquote(f.query)?
        } else {
            Cow::Borrowed(f.query)
        };
        let p = pixel_query(&query, &self.legacy)?;
        let sig = match (&p.sig, p.legacy) {
            (Some(sig), false) => verify(
                &self.keys,
                p.sid.as_deref().unwrap_or(""),
                p.cid.as_deref().unwrap_or(""),
                &p.cat,
                sig,
            ),
            _ => Sig::Missing,
        };
        Some(Pixel {
            sid: p.sid,
            cid: p.cid,
            cat: p.cat,
            sig,
        })
    }

    /// The reference's classification (`Classifier.tag`): `(machine, proxy, certainty,
    /// rules_version, signals)`. Every hit asks, since network lists decide as well as agents.
    fn tag(
        &mut self,
        py: Python<'_>,
        info: PyObject,
        plain: Option<PyObject>,
        f: &Fields<'_>,
    ) -> PyResult<[PyObject; 5]> {
        if let (Some(proxy), Some(fast)) = (plain, self.fast.as_mut()) {
            if let Some(tag) = fast.person(py, proxy, f)? {
                return Ok(tag);
            }
        }
        let tag = self
            .machine_fn
            .call1(py, (info, f.method, f.ip, f.referer, f.asn))?;
        let t = tag.bind(py).downcast::<PyTuple>()?;
        if t.len() != 5 {
            return Err(pyo3::exceptions::PyValueError::new_err("a tag has 5 items"));
        }
        Ok([
            t.get_item(0)?.unbind(),
            t.get_item(1)?.unbind(),
            t.get_item(2)?.unbind(),
            t.get_item(3)?.unbind(),
            t.get_item(4)?.unbind(),
        ])
    }

    fn build(&mut self, py: Python<'_>, f: &Fields<'_>) -> PyResult<Out> {
        let none = py.None();
        let str_obj = |v: &str| PyString::new(py, v).into_any().unbind();
        let Some(p) = self.pixel(f) else {
            return Ok(Out::Defer);
        };
        let (sid, cid, cat, signature) = (
            p.sid.as_deref().map_or_else(|| none.clone_ref(py), str_obj),
            match p.cid.as_deref() {
                Some(c) => self.strings.get(py, c),
                None => none.clone_ref(py),
            },
            self.strings.get(py, &p.cat),
            p.sig,
        );
        let signature = match signature {
            Sig::Valid => self.valid.clone_ref(py),
            Sig::Missing => self.missing.clone_ref(py),
            Sig::Invalid => self.invalid.clone_ref(py),
        };
        let client_ip = match (self.truncate, truncate_v4(f.ip)) {
            (true, Some(net)) => {
                let mut text = String::with_capacity(net.len() + 2);
                text.push_str(net);
                text.push_str(".0");
                str_obj(&text)
            }
            _ => self.ip_fn.call1(py, (f.ip,))?,
        };
        let (info, user_agent, client, device, plain) = self.agent(py, f.raw_agent)?;
        let [machine, proxy, certainty, rules_version, signals] = self.tag(py, info, plain, f)?;
        let args = [
            str_obj(f.rid),
            f.ts_ms.into_pyobject(py)?.into_any().unbind(),
            self.source.clone_ref(py),
            sid,
            cid,
            cat,
            signature,
            self.strings.get(py, f.method),
            f.status.into_pyobject(py)?.into_any().unbind(),
            self.strings.get(py, f.path),
            self.strings.get(py, f.edge),
            client_ip,
            self.strings.get(py, f.country),
            user_agent,
            client,
            device,
            machine,
            if f.referer.is_empty() {
                self.strings.get(py, "")
            } else {
                str_obj(f.referer)
            },
            f.nbytes.into_pyobject(py)?.into_any().unbind(),
            f.taken.into_pyobject(py)?.into_any().unbind(),
            proxy,
            certainty,
            rules_version,
            signals,
        ];
        Ok(Out::Hit(self.hits.make(py, args)?))
    }

    /// `build` for the column emitter: the hit's values appended to `cols` when it is countable
    /// (`Hit.is_hit`), `Skip` when it is a hit that is not. Every Python callback the reference
    /// makes is made first, so a line whose classification fails is deferred either way.
    fn build_columns(
        &mut self,
        py: Python<'_>,
        f: &Fields<'_>,
        cols: &mut Columns,
    ) -> PyResult<Out> {
        let Some(p) = self.pixel(f) else {
            return Ok(Out::Defer);
        };
        let client_ip: Cow<'_, str> = match (self.truncate, truncate_v4(f.ip)) {
            (true, Some(net)) => Cow::Owned(format!("{net}.0")),
            _ => Cow::Owned(self.ip_fn.call1(py, (f.ip,))?.extract(py)?),
        };
        let (info, _, _, _, plain) = self.agent(py, f.raw_agent)?;
        let [machine, proxy, certainty, rules_version, signals] = self.tag(py, info, plain, f)?;
        let machine: Option<String> = machine.extract(py)?;
        let (proxy, certainty, rules_version, signals): (String, String, String, String) = (
            proxy.extract(py)?,
            certainty.extract(py)?,
            rules_version.extract(py)?,
            signals.extract(py)?,
        );
        let (sid, cid) = (
            p.sid.as_deref().unwrap_or(""),
            p.cid.as_deref().unwrap_or(""),
        );
        let countable = self.hit_methods.iter().any(|m| m == f.method)
            && self.hit_statuses.contains(&f.status)
            && !sid.is_empty()
            && !cid.is_empty();
        let (Ok(status), Ok(nbytes)) = (u16::try_from(f.status), u64::try_from(f.nbytes)) else {
            return Ok(Out::Defer);
        };
        if !countable {
            return Ok(Out::Skip);
        }
        let Some(agent) = self.agents.get(f.raw_agent) else {
            return Ok(Out::Defer);
        };
        let [user_agent, client, device] = &agent.texts;
        let texts: [&str; STRING_COLUMNS] = [
            f.rid,
            self.source_text,
            sid,
            cid,
            &p.cat,
            p.sig.text(),
            f.method,
            f.path,
            f.edge,
            &client_ip,
            f.country,
            user_agent,
            client,
            device,
            machine.as_deref().unwrap_or(""),
            f.referer,
            &proxy,
            &certainty,
            &rules_version,
            &signals,
        ];
        cols.push(texts, f.ts_ms, status, nbytes, f.taken as f32);
        Ok(Out::Hit(py.None()))
    }

    fn emit(&self, py: Python<'_>, out: Out) -> PyObject {
        match out {
            Out::Hit(hit) => hit,
            Out::Skip => py.None(),
            Out::Defer => self.defer.clone_ref(py),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Standard logs (processor/core/standard.py)
// ---------------------------------------------------------------------------------------------

/// Column positions in `_USED` order (-1 = absent), as `StandardLayout` computes them.
const STD_COLUMNS: usize = 16;

#[pyclass(module = "opens_native")]
struct StandardCore {
    b: Builder,
    pos: [isize; STD_COLUMNS],
    maxsplit: usize,
    min_fields: usize,
    ranges: Vec<(usize, usize)>,
    /// `parse_columns` appends countable hits here instead of building `Hit` objects.
    cols: Columns,
}

#[pymethods]
impl StandardCore {
    #[new]
    #[pyo3(signature = (defer, *, pixel_path, pixel_only, escaped, legacy, secrets, ip_privacy,
                        agent_fn, machine_fn, ip_fn, new_hit))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        defer: PyObject,
        pixel_path: String,
        pixel_only: bool,
        escaped: bool,
        legacy: String,
        secrets: Vec<Vec<u8>>,
        ip_privacy: &str,
        agent_fn: PyObject,
        machine_fn: PyObject,
        ip_fn: PyObject,
        new_hit: PyObject,
    ) -> PyResult<Self> {
        let b = Builder::new(
            py, defer, "standard", pixel_path, pixel_only, escaped, legacy, secrets, ip_privacy,
            agent_fn, machine_fn, ip_fn, new_hit,
        )?;
        Ok(Self {
            b,
            pos: [-1; STD_COLUMNS],
            maxsplit: 0,
            min_fields: usize::MAX,
            ranges: Vec::new(),
            cols: Columns::default(),
        })
    }

    /// `HIT_METHODS` and `HIT_STATUSES`: which hits `parse_columns` keeps (`Hit.is_hit`).
    fn set_countable(&mut self, methods: Vec<String>, statuses: Vec<i64>) {
        self.b.hit_methods = methods;
        self.b.hit_statuses = statuses;
    }

    /// The classifier's person case decided by the core (`Fast`).
    fn set_fast_path(
        &mut self,
        py: Python<'_>,
        v4_keys: Py<PySet>,
        asns: Py<PySet>,
        rules_version: PyObject,
    ) {
        self.b.set_fast_path(py, v4_keys, asns, rules_version);
    }

    /// `parse_many` for the column emitter: `(codes, next)` for `lines[start:]`, one code per
    /// line — `h` a countable hit appended to the columns, `s` nothing to count (another path,
    /// or a hit that is not countable), `d` deferred to the reference — stopping right after a
    /// line that starts with `#`. `take_columns` hands the appended hits over.
    fn parse_columns<'py>(
        &mut self,
        py: Python<'py>,
        lines: &Bound<'py, PyList>,
        start: usize,
    ) -> (Bound<'py, PyBytes>, usize) {
        let mut codes = Vec::with_capacity(lines.len().saturating_sub(start));
        let mut i = start;
        while i < lines.len() {
            let Ok(line) = lines.get_item(i) else { break };
            i += 1;
            let text = line
                .downcast::<PyString>()
                .ok()
                .and_then(|s| s.to_str().ok());
            let out = match text {
                Some(t) => self.parse_str(py, t, true).unwrap_or(Out::Defer),
                None => Out::Defer,
            };
            codes.push(match out {
                Out::Hit(_) => b'h',
                Out::Skip => b's',
                Out::Defer => b'd',
            });
            if text.is_some_and(|t| t.starts_with('#')) {
                break;
            }
        }
        (PyBytes::new(py, &codes), i)
    }

    /// The rows `parse_columns` appended since the last call, as `Columns.take` lays them out.
    fn take_columns<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.cols.take(py)
    }

    /// Adopt a `StandardLayout` (positions in `_USED` order).
    fn set_layout(&mut self, positions: Vec<isize>, maxsplit: usize, min_fields: usize) {
        for (slot, p) in self.pos.iter_mut().zip(positions) {
            *slot = p;
        }
        self.maxsplit = maxsplit;
        self.min_fields = min_fields;
    }

    /// One line: a `Hit`, `None` (another path) or the `defer` sentinel.
    fn parse(&mut self, py: Python<'_>, line: &Bound<'_, PyAny>) -> PyObject {
        let out = self.parse_any(py, line);
        self.b.emit(py, out)
    }

    /// `(outcomes, deferred, next)` for `lines[start:]`, stopping right after the first line
    /// that starts with `#`: it may be a `#Fields:` header, which the caller applies (and
    /// hands back with `set_layout`) before the next line is parsed.
    fn parse_many(
        &mut self,
        py: Python<'_>,
        lines: &Bound<'_, PyList>,
        start: usize,
    ) -> (Vec<PyObject>, usize, usize) {
        let mut outs = Vec::with_capacity(lines.len().saturating_sub(start));
        let mut deferred = 0;
        let mut i = start;
        while i < lines.len() {
            let Ok(line) = lines.get_item(i) else { break };
            i += 1;
            let header = line
                .downcast::<PyString>()
                .ok()
                .and_then(|s| s.to_str().ok().map(|t| t.starts_with('#')))
                .unwrap_or(false);
            let out = self.parse_any(py, &line);
            deferred += matches!(out, Out::Defer) as usize;
            outs.push(self.b.emit(py, out));
            if header {
                break;
            }
        }
        (outs, deferred, i)
    }
}

impl StandardCore {
    /// A Python error inside (a classifier callback) is dropped here: the line is deferred
    /// and the reference reports it as it always did.
    fn parse_any(&mut self, py: Python<'_>, line: &Bound<'_, PyAny>) -> Out {
        match line.downcast::<PyString>().map(|s| s.to_str()) {
            Ok(Ok(text)) => self.parse_str(py, text, false).unwrap_or(Out::Defer),
            _ => Out::Defer,
        }
    }

    fn parse_str(&mut self, py: Python<'_>, line: &str, to_columns: bool) -> PyResult<Out> {
        let line = line.trim_end_matches(['\r', '\n']);
        // `line.isspace()` lines are counted as blank by the reference; any non-ASCII
        // character might be whitespace to Python, so only an ASCII one proves the line is not.
        let py_space =
            |c: u8| matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ');
        if !line.bytes().any(|c| c.is_ascii() && !py_space(c)) {
            return Ok(Out::Defer);
        }
        match line.as_bytes().first() {
            None | Some(b'#') | Some(b'{') => return Ok(Out::Defer),
            _ => {}
        }
        let mut ranges = std::mem::take(&mut self.ranges);
        split_tabs(line, self.maxsplit, &mut ranges);
        let out = self.fields(py, line, &ranges, to_columns);
        self.ranges = ranges;
        out
    }

    /// `to_columns`: append a countable hit to `self.cols` instead of building a `Hit`.
    fn fields(
        &mut self,
        py: Python<'_>,
        line: &str,
        ranges: &[(usize, usize)],
        to_columns: bool,
    ) -> PyResult<Out> {
        // One part means no TAB at all: Python splits on runs of spaces then (deferred).
        if ranges.len() == 1 || ranges.len() < self.min_fields {
            return Ok(Out::Defer);
        }
        let get = |i: usize| -> &str {
            let p = self.pos[i];
            match ranges.get(p as usize) {
                Some(&(a, b)) if p >= 0 => &line[a..b],
                _ => "-",
            }
        };
        let (date, time, stamp, edge, nbytes, ip, method, path) = (
            get(0),
            get(1),
            get(2),
            get(3),
            get(4),
            get(5),
            get(6),
            get(7),
        );
        let (status, referer, agent, query, rid, taken, country, asn) = (
            get(8),
            get(9),
            get(10),
            get(11),
            get(12),
            get(13),
            get(14),
            get(15),
        );
        let Some(pixel) = self.b.is_pixel(path) else {
            return Ok(Out::Defer);
        };
        if !pixel && self.b.pixel_only {
            return Ok(Out::Skip);
        }
        let ts_ms = if stamp != "-" {
            if !all_digits(stamp) || stamp.len() >= 16 {
                return Ok(Out::Defer);
            }
            stamp.parse::<i64>().ok()
        } else {
            match (date_ms(date), time_ms(time)) {
                (Some(d), Some(t)) => Some(d + t),
                _ => None,
            }
        }
        .filter(|ms| *ms <= MAX_EPOCH_MS);
        let Some(ts_ms) = ts_ms else {
            return Ok(Out::Defer);
        };
        if !all_digits(status) || status.len() > 3 || rid == "-" {
            return Ok(Out::Defer);
        }
        let (Some(nbytes), Some(taken)) = (int_or_zero(nbytes), float_or_zero(taken)) else {
            return Ok(Out::Defer);
        };
        let fields = Fields {
            rid,
            ts_ms,
            method: dash(method),
            status: status.parse().unwrap_or(0),
            path: dash(path),
            query: dash(query),
            ip: dash(ip),
            raw_agent: agent,
            referer: dash(referer),
            edge: dash(edge),
            country: dash(country),
            asn: dash(asn),
            nbytes,
            taken,
            pixel,
        };
        if to_columns {
            self.b.build_columns(py, &fields, &mut self.cols)
        } else {
            self.b.build(py, &fields)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real-time records (processor/core/realtime.py)
// ---------------------------------------------------------------------------------------------

/// Field positions in `_READ` order (-1 = not selected).
const RT_COLUMNS: usize = 14;

#[pyclass(module = "opens_native")]
struct RealtimeCore {
    b: Builder,
    pos: [isize; RT_COLUMNS],
    n: usize,
    has_stem: bool,
    has_headers: bool,
    kpl_magic: Vec<u8>,
    ranges: Vec<(usize, usize)>,
}

#[pymethods]
impl RealtimeCore {
    #[new]
    #[pyo3(signature = (defer, *, positions, n_fields, has_stem, has_headers, kpl_magic,
                        pixel_path, pixel_only, escaped, legacy, secrets, ip_privacy,
                        agent_fn, machine_fn, ip_fn, new_hit))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        defer: PyObject,
        positions: Vec<isize>,
        n_fields: usize,
        has_stem: bool,
        has_headers: bool,
        kpl_magic: Vec<u8>,
        pixel_path: String,
        pixel_only: bool,
        escaped: bool,
        legacy: String,
        secrets: Vec<Vec<u8>>,
        ip_privacy: &str,
        agent_fn: PyObject,
        machine_fn: PyObject,
        ip_fn: PyObject,
        new_hit: PyObject,
    ) -> PyResult<Self> {
        let b = Builder::new(
            py, defer, "realtime", pixel_path, pixel_only, escaped, legacy, secrets, ip_privacy,
            agent_fn, machine_fn, ip_fn, new_hit,
        )?;
        let mut pos = [-1; RT_COLUMNS];
        for (slot, p) in pos.iter_mut().zip(positions) {
            *slot = p;
        }
        Ok(Self {
            b,
            pos,
            n: n_fields,
            has_stem,
            has_headers,
            kpl_magic,
            ranges: Vec::new(),
        })
    }

    /// The classifier's person case decided by the core (`Fast`).
    fn set_fast_path(
        &mut self,
        py: Python<'_>,
        v4_keys: Py<PySet>,
        asns: Py<PySet>,
        rules_version: PyObject,
    ) {
        self.b.set_fast_path(py, v4_keys, asns, rules_version);
    }

    /// One record's bytes (`RealtimeDecoder.decode`).
    fn decode(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyObject {
        let out = self.decode_any(py, data);
        self.b.emit(py, out)
    }

    /// `(outcomes, deferred)` for many records' bytes, one outcome per record.
    fn decode_many(
        &mut self,
        py: Python<'_>,
        records: &Bound<'_, PyList>,
    ) -> (Vec<PyObject>, usize) {
        let mut outs = Vec::with_capacity(records.len());
        let mut deferred = 0;
        for data in records.iter() {
            let out = self.decode_any(py, &data);
            deferred += matches!(out, Out::Defer) as usize;
            outs.push(self.b.emit(py, out));
        }
        (outs, deferred)
    }

    /// One record as text (`RealtimeDecoder.decode_line`).
    fn decode_line(&mut self, py: Python<'_>, line: &Bound<'_, PyAny>) -> PyObject {
        let out = self.decode_text(py, line);
        self.b.emit(py, out)
    }

    /// `(outcomes, deferred)` for many records as text.
    fn decode_line_many(
        &mut self,
        py: Python<'_>,
        lines: &Bound<'_, PyList>,
    ) -> (Vec<PyObject>, usize) {
        let mut outs = Vec::with_capacity(lines.len());
        let mut deferred = 0;
        for line in lines.iter() {
            let out = self.decode_text(py, &line);
            deferred += matches!(out, Out::Defer) as usize;
            outs.push(self.b.emit(py, out));
        }
        (outs, deferred)
    }
}

impl RealtimeCore {
    fn decode_any(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> Out {
        let Ok(bytes) = data.downcast::<PyBytes>() else {
            return Out::Defer;
        };
        let bytes = bytes.as_bytes();
        if bytes.starts_with(&self.kpl_magic) {
            return Out::Defer;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => self.decode_str(py, text).unwrap_or(Out::Defer),
            Err(_) => Out::Defer,
        }
    }

    fn decode_text(&mut self, py: Python<'_>, line: &Bound<'_, PyAny>) -> Out {
        match line.downcast::<PyString>().map(|s| s.to_str()) {
            Ok(Ok(text)) => self.decode_str(py, text).unwrap_or(Out::Defer),
            _ => Out::Defer,
        }
    }

    fn decode_str(&mut self, py: Python<'_>, line: &str) -> PyResult<Out> {
        let line = line
            .strip_suffix("\r\n")
            .or_else(|| line.strip_suffix('\n'))
            .unwrap_or(line);
        let mut ranges = std::mem::take(&mut self.ranges);
        split_tabs(line, usize::MAX, &mut ranges);
        let out = self.fields(py, line, &ranges);
        self.ranges = ranges;
        out
    }

    fn fields(&mut self, py: Python<'_>, line: &str, ranges: &[(usize, usize)]) -> PyResult<Out> {
        if ranges.len() != self.n {
            return Ok(Out::Defer);
        }
        let get = |i: usize| -> &str {
            let p = self.pos[i];
            match ranges.get(p as usize) {
                Some(&(a, b)) if p >= 0 => &line[a..b],
                _ => "-",
            }
        };
        let (stamp, ip, status, nbytes, method, stem, edge) =
            (get(0), get(1), get(2), get(3), get(4), get(5), get(6));
        let (rid, taken, agent, referer, query, country, asn) =
            (get(7), get(8), get(9), get(10), get(11), get(12), get(13));
        let (path, pixel, query) = if self.has_stem {
            let (path, stem_query) = match stem.find('?') {
                Some(i) => (&stem[..i], &stem[i + 1..]),
                None => (stem, ""),
            };
            let Some(pixel) = self.b.is_pixel(path) else {
                return Ok(Out::Defer);
            };
            if !pixel && self.b.pixel_only {
                return Ok(Out::Skip);
            }
            (path, pixel, if query == "-" { stem_query } else { query })
        } else {
            (self.b.pixel_path.as_str(), true, query)
        };
        let path = path.to_owned();
        let Some(ts_ms) = seconds_text_ms(stamp) else {
            return Ok(Out::Defer);
        };
        let status = if all_digits(status) && status.len() <= 3 {
            status.parse().unwrap_or(0)
        } else if status == "-" {
            0
        } else {
            return Ok(Out::Defer);
        };
        if rid == "-"
            || (self.has_headers && (agent == "-" || referer == "-" || may_name_prefetch(line)))
        {
            return Ok(Out::Defer);
        }
        let (Some(nbytes), Some(taken)) = (int_or_zero(nbytes), float_or_zero(taken)) else {
            return Ok(Out::Defer);
        };
        let fields = Fields {
            rid,
            ts_ms,
            method: dash(method),
            status,
            path: &path,
            query: dash(query),
            ip: dash(ip),
            raw_agent: agent,
            referer: dash(referer),
            edge: dash(edge),
            country: dash(country),
            asn: dash(asn),
            nbytes,
            taken,
            pixel,
        };
        self.b.build(py, &fields)
    }
}

// ---------------------------------------------------------------------------------------------
// NDJSON output of `opens parse` (DESIGN §4), byte for byte what orjson writes
// ---------------------------------------------------------------------------------------------

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// `iso_ms`: `"2026-11-27T18:56:28.123Z"`; `false` outside years 1000-9999 (left to Python).
/// The text up to the second is kept for the next hit: log lines come in time order.
fn write_iso(buf: &mut Vec<u8>, ts_ms: i64, last: &mut (i64, [u8; 21])) -> bool {
    let (secs, millis) = (ts_ms.div_euclid(1000), ts_ms.rem_euclid(1000));
    if last.0 != secs || last.1[0] == 0 {
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        if !(1000..=9999).contains(&y) {
            return false;
        }
        let head = format!(
            "\"{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        );
        last.1.copy_from_slice(head.as_bytes());
        last.0 = secs;
    }
    buf.extend_from_slice(&last.1);
    let ms = millis as u32;
    buf.extend_from_slice(&[
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
        b'"',
    ]);
    true
}

fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let b = s.as_bytes();
    if !b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\') {
        buf.extend_from_slice(b);
        buf.push(b'"');
        return;
    }
    let mut from = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&b[from..i]);
        if esc.is_empty() {
            buf.extend_from_slice(format!("\\u{:04x}", c).as_bytes());
        } else {
            buf.extend_from_slice(esc);
        }
        from = i + 1;
    }
    buf.extend_from_slice(&b[from..]);
    buf.push(b'"');
}

/// orjson's float text where it is plain decimal notation (0.0 and 1e-5 <= v < 1e16).
fn write_json_float(buf: &mut Vec<u8>, v: f64) -> bool {
    if v == 0.0 && v.is_sign_positive() {
        buf.extend_from_slice(b"0.0");
        return true;
    }
    if !(1e-5..1e16).contains(&v) {
        return false;
    }
    // ryu: the shortest round-trip digits, ties to even (as orjson and Python's repr; Rust's
    // Display breaks ties the other way), in decimal notation throughout this range.
    let mut text = ryu::Buffer::new();
    let text = text.format_finite(v).as_bytes();
    if text.contains(&b'e') {
        return false;
    }
    buf.extend_from_slice(text);
    if !text.contains(&b'.') {
        buf.extend_from_slice(b".0");
    }
    true
}

enum Kind {
    Str,
    OptStr,
    Int,
    Float,
    Ts,
}

/// `Hit.to_json_dict()` keys, in order, with the slot each value comes from.
const JSON_KEYS: [(&str, usize, Kind); JSON_FIELDS] = [
    ("request_id", 0, Kind::Str),
    ("ts", 1, Kind::Ts),
    ("source", 2, Kind::Str),
    ("sid", 3, Kind::OptStr),
    ("cid", 4, Kind::OptStr),
    ("cat", 5, Kind::Str),
    ("signature", 6, Kind::Str),
    ("method", 7, Kind::Str),
    ("status", 8, Kind::Int),
    ("uri", 9, Kind::Str),
    ("edge_location", 10, Kind::Str),
    ("client_ip", 11, Kind::Str),
    ("country", 12, Kind::Str),
    ("user_agent", 13, Kind::Str),
    ("client", 14, Kind::Str),
    ("device", 15, Kind::Str),
    ("machine", 16, Kind::OptStr),
    ("proxy", 20, Kind::Str),
    ("certainty", 21, Kind::Str),
    ("referer", 17, Kind::Str),
    ("bytes", 18, Kind::Int),
    ("time_taken", 19, Kind::Float),
];

/// Writes hits as NDJSON; a hit it cannot render exactly goes through `fallback(hit)`
/// (orjson on `to_json_dict()`), so the output is always the reference's.
#[pyclass(module = "opens_native")]
struct NdjsonWriter {
    hits: HitMaker,
    fallback: PyObject,
    last_second: (i64, [u8; 21]),
}

#[pymethods]
impl NdjsonWriter {
    #[new]
    fn new(py: Python<'_>, new_hit: PyObject, fallback: PyObject) -> PyResult<Self> {
        Ok(Self {
            hits: HitMaker::new(py, new_hit)?,
            fallback,
            last_second: (0, [0; 21]),
        })
    }

    /// One `bytes` holding a line per hit.
    fn dumps<'py>(
        &mut self,
        py: Python<'py>,
        hits: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut buf = Vec::with_capacity(hits.len() * 640);
        for hit in hits.iter() {
            let start = buf.len();
            if !self.write(py, &mut buf, &hit) {
                buf.truncate(start);
                let line = self.fallback.call1(py, (hit,))?;
                buf.extend_from_slice(line.downcast_bound::<PyBytes>(py)?.as_bytes());
            }
        }
        Ok(PyBytes::new(py, &buf))
    }
}

impl NdjsonWriter {
    fn write(&mut self, py: Python<'_>, buf: &mut Vec<u8>, hit: &Bound<'_, PyAny>) -> bool {
        let Some(offsets) = self.hits.offsets else {
            return false;
        };
        if !hit.get_type().is(self.hits.hit_type.bind(py)) {
            return false;
        }
        let base = hit.as_ptr() as *const u8;
        buf.push(b'{');
        for (k, (key, slot, kind)) in JSON_KEYS.iter().enumerate() {
            // SAFETY: `hit` is exactly a `Hit`, whose object slots live at these offsets;
            // the value is borrowed while `hit` (kept alive by the list) holds it.
            let ptr =
                unsafe { (base.add(offsets[*slot]) as *const *mut pyo3::ffi::PyObject).read() };
            if ptr.is_null() {
                return false;
            }
            let value = unsafe { Bound::from_borrowed_ptr(py, ptr) };
            if k > 0 {
                buf.push(b',');
            }
            buf.push(b'"');
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(b"\":");
            let ok = match kind {
                Kind::OptStr if value.is_none() => {
                    buf.extend_from_slice(b"null");
                    true
                }
                Kind::Str | Kind::OptStr => match value.downcast_exact::<PyString>() {
                    Ok(s) => match s.to_str() {
                        Ok(text) => {
                            write_json_str(buf, text);
                            true
                        }
                        Err(_) => false,
                    },
                    Err(_) => false,
                },
                Kind::Int => match value.downcast_exact::<PyInt>().map(|i| i.extract::<i64>()) {
                    Ok(Ok(n)) => {
                        buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                        true
                    }
                    _ => false,
                },
                Kind::Ts => match value.downcast_exact::<PyInt>().map(|i| i.extract::<i64>()) {
                    Ok(Ok(n)) => write_iso(buf, n, &mut self.last_second),
                    _ => false,
                },
                Kind::Float => match value.downcast_exact::<PyFloat>() {
                    Ok(f) => write_json_float(buf, f.value()),
                    Err(_) => false,
                },
            };
            if !ok {
                return false;
            }
        }
        buf.extend_from_slice(b"}\n");
        true
    }
}

#[pymodule]
fn opens_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StandardCore>()?;
    m.add_class::<RealtimeCore>()?;
    m.add_class::<NdjsonWriter>()?;
    // The `Hit` layout this core was built for: Python uses the core only when it matches.
    m.add("HIT_FIELDS", HIT_FIELDS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote_matches_python() {
        assert_eq!(unquote("a%20b").as_deref(), Some("a b"));
        assert_eq!(unquote("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(unquote("%C3%A9").as_deref(), Some("é"));
        assert_eq!(unquote("%C3"), None);
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(date_ms("2019-02-29"), None);
        assert_eq!(time_ms("00:00:01.5"), Some(1500));
        assert_eq!(seconds_text_ms("1607374321.541"), Some(1_607_374_321_541));
    }

    #[test]
    fn ipv4_truncation_is_strict() {
        assert_eq!(truncate_v4("192.0.2.7"), Some("192.0.2"));
        assert_eq!(truncate_v4("192.0.02.7"), None);
        assert_eq!(truncate_v4("1.2.3"), None);
    }
}
