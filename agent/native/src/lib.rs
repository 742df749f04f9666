//! The agent's native fast path: a prediction log line of the common shape -> its bulk item.
//!
//! The Python `Normalizer` (agent/src/inferwatch/agent/normalize.py) is the definition of every
//! rule. This module only writes, for the lines it is sure about, the very bytes the Python one
//! writes; for every other line it answers "declined" and the Python normalizer decides (it also
//! makes every reject and every repair). What it takes, and nothing more:
//!
//! - a JSON object (json.rs: strict, no byte order mark, no escaped or duplicate keys, no `-0`,
//!   nesting up to 128 levels);
//! - a model name that is a string the Python side registered (`set_model`), or absent, null or
//!   empty with a default model registered;
//! - a timestamp already in the canonical form `YYYY-MM-DDTHH:MM:SS.mmmZ`, a valid date;
//! - a version and a prediction id that are strings (or absent/null), a latency that is a number;
//! - inputs and outputs that are objects (or absent/null) whose configured features already have
//!   their kind's JSON type (an integer for a numeric feature is written as a float);
//! - text features in ASCII (the tokenizer's ASCII rules; NFKC and CJK stay in Python).
//!
//! Config-wise, the Python side builds no fast path when redaction is on or the inputs and
//! outputs paths overlap. tests/unit/agent/test_native.py holds the two to the same bytes.

mod gzlines;
mod json;

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine as _;
use json::{write_f64, write_str, Doc, Kind, Node};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

const MODEL_TABLE_SIZE: usize = 1024; // as normalize.MODEL_CACHE_SIZE: a flood of names costs CPU only
const MAX_TOKEN_CHARS: usize = 40; // core.tokenize
const MAX_TOKENS: usize = 256;

/// A field path: the literal (maybe dotted) key first, then the nested walk (`normalize._dig`).
struct FieldPath {
    dotted: String,
    parts: Vec<String>,
}

impl FieldPath {
    fn new(path: &str) -> Self {
        FieldPath {
            dotted: path.to_owned(),
            parts: path.split('.').map(str::to_owned).collect(),
        }
    }

    fn get(&self, doc: &Doc, obj: u32) -> Option<u32> {
        let literal = doc.get(obj, self.dotted.as_bytes());
        match literal {
            Some(i) if doc.node(i).kind != Kind::Null => Some(i),
            _ if self.parts.len() == 1 => literal,
            _ => walk(doc, obj, &self.parts),
        }
    }
}

fn walk(doc: &Doc, obj: u32, parts: &[String]) -> Option<u32> {
    let mut here = obj;
    for part in parts {
        here = doc.get(here, part.as_bytes())?;
    }
    Some(here)
}

/// The object at `path`: Ok(None) when absent or null, Err when it is something else (the Python
/// side rejects the line).
fn object_at(doc: &Doc, path: &FieldPath) -> Result<Option<u32>, ()> {
    let found = path.get(doc, 0);
    match kind_of(doc, found) {
        None | Some(Kind::Null) => Ok(None),
        Some(Kind::Object) => Ok(found),
        Some(_) => Err(()),
    }
}

/// An inputs or outputs object, its configured features coerced when the model has any.
#[must_use]
fn write_features(doc: &Doc, obj: u32, kinds: Option<&Kinds>, out: &mut Vec<u8>) -> bool {
    match kinds {
        Some(kinds) => kinds.write(doc, obj, out),
        None => doc.write(obj, out),
    }
}

fn kind_of(doc: &Doc, i: Option<u32>) -> Option<Kind> {
    i.map(|i| doc.node(i).kind)
}

/// The role of a configured feature at one object level.
enum Role {
    Numeric,
    String,
    Child(Kinds),
}

/// One object level's configured features (`normalize._Kinds`).
struct Kinds {
    roles: Vec<(String, Role)>, // numeric, then strings, then children: the Python order
    text: Vec<(String, Vec<String>)>,
}

impl Kinds {
    fn from_py(tree: &Bound<'_, PyAny>) -> PyResult<Self> {
        let t = tree.downcast::<PyTuple>()?;
        let mut roles: Vec<(String, Role)> = Vec::new();
        for key in t.get_item(0)?.extract::<Vec<String>>()? {
            roles.push((key, Role::Numeric));
        }
        for key in t.get_item(1)?.extract::<Vec<String>>()? {
            roles.push((key, Role::String));
        }
        for child in t.get_item(2)?.try_iter()? {
            let child = child?;
            let pair = child.downcast::<PyTuple>()?;
            roles.push((
                pair.get_item(0)?.extract::<String>()?,
                Role::Child(Kinds::from_py(&pair.get_item(1)?)?),
            ));
        }
        Ok(Kinds {
            roles,
            text: t.get_item(3)?.extract()?,
        })
    }

    fn role(&self, key: &[u8]) -> Option<&Role> {
        self.roles
            .iter()
            .find(|(k, _)| k.as_bytes() == key)
            .map(|(_, role)| role)
    }

    /// The object `obj` with its features coerced (`_Kinds.apply`): an integer of a numeric
    /// feature becomes a float; false for a value the Python side would null or convert.
    #[must_use]
    fn write(&self, doc: &Doc, obj: u32, out: &mut Vec<u8>) -> bool {
        out.push(b'{');
        for (k, m) in doc.members(obj).enumerate() {
            if k > 0 {
                out.push(b',');
            }
            doc.write_key(m, out);
            let node = doc.node(m);
            let ok = match (self.role(doc.key(node)), node.kind) {
                (Some(Role::Numeric), Kind::Int) => {
                    json::write_int_as_f64(out, &doc.line[node.start as usize..node.end as usize])
                }
                (Some(Role::Numeric), Kind::Null | Kind::Float) => doc.write(m, out),
                (Some(Role::Numeric), _) => false,
                (Some(Role::String), Kind::Null | Kind::Str | Kind::EscapedStr) => {
                    doc.write(m, out)
                }
                (Some(Role::String), _) => false,
                (Some(Role::Child(child)), Kind::Object) => child.write(doc, m, out),
                _ => doc.write(m, out),
            };
            if !ok {
                return false;
            }
        }
        out.push(b'}');
        true
    }
}

/// Everything the Python side derived from one model name (`normalize._ModelInfo`).
struct Model {
    name: String,
    action: Vec<u8>,
    id_prefix: Vec<u8>,
    middle: Vec<u8>, // the document from the dataset to the path (normalize._ModelInfo.middle)
    inputs: Option<Kinds>,
    outputs: Option<Kinds>,
}

#[derive(Default)]
struct Models {
    named: HashMap<String, Model>,
    default: Option<Model>, // for lines without a name
}

#[pyclass(frozen, module = "inferwatch_native")]
struct FastPath {
    timestamp: FieldPath,
    model: FieldPath,
    version: FieldPath,
    prediction_id: FieldPath,
    inputs: FieldPath,
    outputs: FieldPath,
    latency: FieldPath,
    default_version: String,
    by_prediction_id: bool,
    action_tail: Vec<u8>,
    middle_head: Vec<u8>,
    middle_tail: Vec<u8>,
    models: RwLock<Models>,
}

/// What one line needs beyond the line: its file and batch.
struct Where<'a> {
    fingerprint: &'a [u8],
    path_json: &'a [u8],
    ingested_json: &'a [u8],
}

/// Scratch buffers reused from line to line.
#[derive(Default)]
struct Scratch {
    nodes: Vec<Node>,
    ml: Vec<u8>,
    key: Vec<u8>,
}

impl FastPath {
    /// Append the bulk item of `line` to `out`; false (and `out` to be truncated by the caller)
    /// when the line is declined.
    fn item(
        &self,
        models: &Models,
        line: &[u8],
        offset: i64,
        at: &Where,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> bool {
        if line.starts_with(b"\xef\xbb\xbf") {
            return false;
        }
        let doc = match Doc::parse(line, std::mem::take(&mut scratch.nodes)) {
            Ok(doc) => doc,
            Err(nodes) => {
                scratch.nodes = nodes;
                return false;
            }
        };
        let ok = self.document(models, &doc, offset, at, scratch, out);
        scratch.nodes = doc.nodes;
        ok
    }

    fn document(
        &self,
        models: &Models,
        doc: &Doc,
        offset: i64,
        at: &Where,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> bool {
        const ROOT: u32 = 0;
        if doc.node(ROOT).kind != Kind::Object {
            return false;
        }
        let name = self.model.get(doc, ROOT);
        let model = match kind_of(doc, name) {
            None | Some(Kind::Null) => models.default.as_ref(),
            Some(Kind::Str | Kind::EscapedStr) => {
                let text = doc.text(name.unwrap_or(ROOT));
                if text.is_empty() {
                    models.default.as_ref()
                } else {
                    models.named.get(text.as_ref())
                }
            }
            Some(_) => None,
        };
        let Some(model) = model else { return false };

        let ts = self.timestamp.get(doc, ROOT);
        let ts = match ts {
            Some(i) if doc.node(i).kind == Kind::Str => {
                let n = doc.node(i);
                let span = &doc.line[n.start as usize..n.end as usize];
                if !canonical_timestamp(&span[1..span.len() - 1]) {
                    return false;
                }
                span
            }
            _ => return false,
        };
        let version = self.version.get(doc, ROOT);
        match kind_of(doc, version) {
            None | Some(Kind::Null | Kind::Str | Kind::EscapedStr) => {}
            Some(_) => return false,
        }
        let pid = self.prediction_id.get(doc, ROOT);
        let pid = match kind_of(doc, pid) {
            None | Some(Kind::Null) => None,
            Some(Kind::Str | Kind::EscapedStr) => pid,
            Some(_) => return false,
        };
        let latency = self.latency.get(doc, ROOT);
        let latency = match kind_of(doc, latency) {
            None | Some(Kind::Null) => None,
            Some(Kind::Int | Kind::Float) => latency,
            Some(_) => return false,
        };
        let (Ok(inputs), Ok(outputs)) =
            (object_at(doc, &self.inputs), object_at(doc, &self.outputs))
        else {
            return false;
        };

        // "ml", into its own buffer: a declined value may still show up
        let ml = &mut scratch.ml;
        ml.clear();
        ml.extend_from_slice(b"{\"model\":{\"name\":");
        write_str(ml, &model.name);
        ml.extend_from_slice(b",\"version\":");
        match version {
            Some(v) if doc.node(v).kind != Kind::Null => {
                if !doc.write(v, ml) {
                    return false;
                }
            }
            _ => write_str(ml, &self.default_version),
        }
        ml.push(b'}');
        if pid.is_some() || latency.is_some() {
            ml.extend_from_slice(b",\"prediction\":{");
            if let Some(id) = pid {
                ml.extend_from_slice(b"\"id\":");
                if !doc.write(id, ml) {
                    return false;
                }
            }
            if let Some(ms) = latency {
                if pid.is_some() {
                    ml.push(b',');
                }
                ml.extend_from_slice(b"\"latency_ms\":");
                let n = doc.node(ms);
                let span = &doc.line[n.start as usize..n.end as usize];
                let ok = match n.kind {
                    Kind::Int => json::write_int_as_f64(ml, span),
                    _ => write_f64(ml, json::parse_f64(span)),
                };
                if !ok {
                    return false;
                }
            }
            ml.push(b'}');
        }
        if let Some(inputs) = inputs {
            ml.extend_from_slice(b",\"inputs\":");
            if !write_features(doc, inputs, model.inputs.as_ref(), ml) {
                return false;
            }
            if let Some(kinds) = &model.inputs {
                let mut first = true;
                for (key, parts) in &kinds.text {
                    let mut text = doc.get(inputs, key.as_bytes());
                    if matches!(kind_of(doc, text), None | Some(Kind::Null)) && parts.len() > 1 {
                        text = walk(doc, inputs, parts);
                    }
                    let Some(t @ (Kind::Str | Kind::EscapedStr)) = kind_of(doc, text) else {
                        continue;
                    };
                    let _ = t;
                    let value = doc.text(text.unwrap_or(inputs));
                    let Some(found) = tokenize_ascii(value.as_bytes()) else {
                        return false;
                    };
                    ml.extend_from_slice(if first { b",\"tokens\":{" } else { b"," });
                    first = false;
                    write_str(ml, key);
                    ml.extend_from_slice(b":[");
                    for (j, token) in found.iter().enumerate() {
                        if j > 0 {
                            ml.push(b',');
                        }
                        ml.push(b'"');
                        ml.extend(token.iter().map(u8::to_ascii_lowercase));
                        ml.push(b'"');
                    }
                    ml.push(b']');
                }
                if !first {
                    ml.push(b'}');
                }
            }
        }
        if let Some(outputs) = outputs {
            ml.extend_from_slice(b",\"outputs\":");
            if !write_features(doc, outputs, model.outputs.as_ref(), ml) {
                return false;
            }
        }
        ml.push(b'}');

        // the action line: its head, the id, its tail
        let key = &mut scratch.key;
        key.clear();
        match pid {
            Some(id) if self.by_prediction_id => {
                key.extend_from_slice(&model.id_prefix);
                key.extend_from_slice(doc.text(id).as_bytes());
            }
            _ => {
                key.extend_from_slice(at.fingerprint);
                key.push(b':');
                key.extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
            }
        }
        out.extend_from_slice(&model.action);
        document_id(key, out);
        out.extend_from_slice(&self.action_tail);

        // the document
        out.extend_from_slice(b"{\"@timestamp\":");
        out.extend_from_slice(ts); // canonical, with its quotes: nothing to escape
        out.extend_from_slice(&self.middle_head);
        out.extend_from_slice(at.ingested_json);
        out.extend_from_slice(&model.middle);
        out.extend_from_slice(at.path_json);
        out.extend_from_slice(&self.middle_tail);
        out.extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
        out.extend_from_slice(b"},\"ml\":");
        out.extend_from_slice(ml);
        out.extend_from_slice(b"}\n");
        true
    }
}

#[pymethods]
impl FastPath {
    /// `fields`: the seven paths (timestamp, model, version, prediction id, inputs, outputs,
    /// latency); `pieces`: (action tail, middle head, middle tail) as normalize.py writes them.
    #[new]
    fn new(
        fields: (String, String, String, String, String, String, String),
        default_version: String,
        by_prediction_id: bool,
        pieces: (Vec<u8>, Vec<u8>, Vec<u8>),
    ) -> Self {
        let (timestamp, model, version, prediction_id, inputs, outputs, latency) = fields;
        FastPath {
            timestamp: FieldPath::new(&timestamp),
            model: FieldPath::new(&model),
            version: FieldPath::new(&version),
            prediction_id: FieldPath::new(&prediction_id),
            inputs: FieldPath::new(&inputs),
            outputs: FieldPath::new(&outputs),
            latency: FieldPath::new(&latency),
            default_version,
            by_prediction_id,
            action_tail: pieces.0,
            middle_head: pieces.1,
            middle_tail: pieces.2,
            models: RwLock::new(Models::default()),
        }
    }

    /// Register what the Python side derived for a model name (`key` None: the default model,
    /// for lines without a name). `inputs`/`outputs`: `_Kinds.native()` trees, or None.
    #[pyo3(signature = (key, name, action, id_prefix, middle, inputs, outputs))]
    #[allow(clippy::too_many_arguments)]
    fn set_model(
        &self,
        key: Option<String>,
        name: String,
        action: Vec<u8>,
        id_prefix: Vec<u8>,
        middle: Vec<u8>,
        inputs: Option<Bound<'_, PyAny>>,
        outputs: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let model = Model {
            name,
            action,
            id_prefix,
            middle,
            inputs: inputs.as_ref().map(Kinds::from_py).transpose()?,
            outputs: outputs.as_ref().map(Kinds::from_py).transpose()?,
        };
        let mut models = self
            .models
            .write()
            .map_err(|_| PyValueError::new_err("model table poisoned"))?;
        match key {
            None => models.default = Some(model),
            Some(key) => {
                if models.named.len() >= MODEL_TABLE_SIZE && !models.named.contains_key(&key) {
                    models.named.clear();
                }
                models.named.insert(key, model);
            }
        }
        Ok(())
    }

    /// The bulk item of each line, in order; None for a line this fast path declines. The lines
    /// are processed without the GIL.
    fn bulk_items<'py>(
        &self,
        py: Python<'py>,
        lines: Vec<Bound<'py, PyBytes>>,
        offsets: Vec<i64>,
        fingerprint: &str,
        path_json: &[u8],
        ingested_json: &[u8],
    ) -> PyResult<Bound<'py, PyList>> {
        if lines.len() != offsets.len() {
            return Err(PyValueError::new_err("lines and offsets differ in length"));
        }
        let slices: Vec<&[u8]> = lines.iter().map(|b| b.as_bytes()).collect();
        let at = Where {
            fingerprint: fingerprint.as_bytes(),
            path_json,
            ingested_json,
        };
        let (buffer, ends) = py
            .allow_threads(|| {
                let models = self.models.read().map_err(|_| "model table poisoned")?;
                let mut buffer: Vec<u8> =
                    Vec::with_capacity(slices.iter().map(|s| s.len() * 2 + 256).sum());
                let mut ends: Vec<Option<usize>> = Vec::with_capacity(slices.len());
                let mut scratch = Scratch::default();
                for (line, &offset) in slices.iter().zip(&offsets) {
                    let start = buffer.len();
                    if self.item(&models, line, offset, &at, &mut scratch, &mut buffer) {
                        ends.push(Some(buffer.len()));
                    } else {
                        buffer.truncate(start);
                        ends.push(None);
                    }
                }
                Ok::<_, &'static str>((buffer, ends))
            })
            .map_err(PyValueError::new_err)?;
        let items = PyList::empty(py);
        let mut start = 0;
        for end in ends {
            match end {
                Some(end) => {
                    items.append(PyBytes::new(py, &buffer[start..end]))?;
                    start = end;
                }
                None => items.append(py.None())?,
            }
        }
        Ok(items)
    }
}

/// The JSON value of `line` written back as orjson writes it, None when the scanner declines
/// the line (for tests: the scanner and writer are held to orjson's bytes).
#[pyfunction]
fn reencode<'py>(py: Python<'py>, line: &[u8]) -> Option<Bound<'py, PyBytes>> {
    let doc = Doc::parse(line, Vec::new()).ok()?;
    let mut out = Vec::new();
    doc.write(0, &mut out).then(|| PyBytes::new(py, &out))
}

/// The tokens of an ASCII text (None for other text), for tests against core.tokenize.
#[pyfunction]
fn tokenize(text: &str) -> Option<Vec<String>> {
    let found = tokenize_ascii(text.as_bytes())?;
    Some(
        found
            .iter()
            .map(|t| t.iter().map(|c| c.to_ascii_lowercase() as char).collect())
            .collect(),
    )
}

/// Whether `timestamp` matches the strict form the normalizer writes unchanged.
#[pyfunction]
fn is_canonical_timestamp(timestamp: &str) -> bool {
    canonical_timestamp(timestamp.as_bytes())
}

/// The lines at `numbers` (ascending, distinct, 0-based) of the NDJSON body in the one-member gzip
/// `payload`, or None when `gzlines` declines it (the Python path then inflates it and raises
/// with its own message). The inflate and the search run without the GIL.
#[pyfunction]
fn gzip_lines<'py>(
    py: Python<'py>,
    payload: &[u8],
    numbers: Vec<usize>,
) -> Option<Vec<Bound<'py, PyBytes>>> {
    let spans = py.allow_threads(|| gzlines::find(payload, &numbers))?;
    Some(gzlines::with_body(|body| {
        spans
            .iter()
            .map(|&(s, e)| PyBytes::new(py, &body[s..e]))
            .collect()
    }))
}

#[pymodule]
fn inferwatch_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FastPath>()?;
    m.add_function(wrap_pyfunction!(reencode, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(is_canonical_timestamp, m)?)?;
    m.add_function(wrap_pyfunction!(gzip_lines, m)?)?;
    Ok(())
}

// ---- the pieces, each the mirror of one Python rule -------------------------------------------

/// `core.contract.document_id_bytes`: base64url, unpadded, of the 16-byte blake2b of `key`.
fn document_id(key: &[u8], out: &mut Vec<u8>) {
    let digest = blake2b_simd::Params::new().hash_length(16).hash(key);
    let mut encoded = [0u8; 22];
    let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(digest.as_bytes(), &mut encoded)
        .unwrap_or(0);
    out.extend_from_slice(&encoded[..written]);
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` with a date and time `datetime.fromisoformat` takes.
fn canonical_timestamp(s: &[u8]) -> bool {
    if s.len() != 24
        || s[4] != b'-'
        || s[7] != b'-'
        || s[10] != b'T'
        || s[13] != b':'
        || s[16] != b':'
        || s[19] != b'.'
        || s[23] != b'Z'
    {
        return false;
    }
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    if !digits.iter().all(|&i| s[i].is_ascii_digit()) {
        return false;
    }
    let num = |a: usize, b: usize| {
        s[a..b]
            .iter()
            .fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1
        && (1..=days).contains(&day)
        && num(11, 13) < 24
        && num(14, 16) < 60
        && num(17, 19) < 60
}

/// `core.tokenize.tokenize` on ASCII text: the distinct runs of letters and digits (as slices of
/// `text`, to be lowercased), those longer than 40 left out, at most 256. None when `text` is not
/// ASCII.
fn tokenize_ascii(text: &[u8]) -> Option<Vec<&[u8]>> {
    if !text.is_ascii() {
        return None;
    }
    let mut found: Vec<&[u8]> = Vec::new();
    for run in text.split(|c| !c.is_ascii_alphanumeric()) {
        if run.is_empty() || run.len() > MAX_TOKEN_CHARS {
            continue;
        }
        if !found.iter().any(|t| t.eq_ignore_ascii_case(run)) {
            if found.len() == MAX_TOKENS {
                break;
            }
            found.push(run);
        }
    }
    Some(found)
}
