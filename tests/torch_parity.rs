//! PyTorch conformance: replays recorded `torch.optim` and `torchao.optim` trajectories through
//! the crate.
//!
//! Every `*.json` under `tests/vectors/` holds cases in format `torch-optim-vectors/1` (written by
//! `tools/torch_vectors.py` from torch 2.15) or `torch-optim-vectors/2` (written by
//! `tools/torch_vectors_v2.py` from torch 2.15 and torchao 0.18; the format is specified in
//! `shared/spec/torch-vectors.md`). A case names an optimizer class, the keyword arguments given
//! to its constructor (`hyper`; an absent key takes the class's default, which is the `Default`
//! of the matching type here, `Adam::adamw()` for `AdamW`, and `TorchaoAdam::adamw8bit()` and
//! its siblings for torchao's classes), initial parameters, the gradient fed before each
//! `step()` and the parameters the reference produced after it. Each case is replayed from a
//! fresh state (`Optimizer::init_state_in`, step counter starting at 1, on `Backend::best()`;
//! the backends give identical bits, see `tests/backends.rs`) and compared element by element
//! with the pass rule, for expected `e` and crate value `a`:
//!
//! * both NaN, or both the same infinity: pass;
//! * otherwise pass iff `|a − e| ≤ 1e-5·|e| + 1e-6·max(1, max_j |e_j|)`, evaluated in f64 exactly
//!   as the spec writes it (so a NaN on one side fails, and an infinite expected value makes the
//!   right-hand side infinite, as the spec's formula implies);
//! * version 2, `bfloat16` and `float16` cases only: also pass when `a` and `e` are both finite
//!   and at most 2 units in the last place of that dtype apart: their positions in the ordered
//!   sequence of the dtype's finite values differ by at most 2 (`+0` and `−0` are one position).
//!
//! A case fails at the first failing step and element, reported with both values.
//!
//! **Stricter, crate-specific rule for torchao** (in addition to the spec's rule): the crate
//! promises torchao's compiled low-bit AdamW to the bit, so a `torchao-compiled` case fails
//! unless every compared value is bit-identical to the reference (NaN compared as a class),
//! even when the tolerance above would accept it. Each torchao case gets its own report line.
//!
//! Version 2 cases are mapped as follows:
//! * `dtype` `float32` (default), `bfloat16`, `float16`: [`Params`] and [`Grads`] `F32`, `Bf16`,
//!   `F16` (round to nearest even; every value of `params`, `grads` and `expected` must already be
//!   a value of the dtype, otherwise the case is malformed and fails);
//! * `state` absent: the state the reference keeps. For `torch.optim` classes that is the
//!   parameter's dtype ([`State::F32`], [`State::Bf16`], [`State::F16`]); for torchao's classes it
//!   is torchao's own choice, [`TorchaoAdam::state_format_for`]`(n, dtype)`: the class's block
//!   format for tensors of at least 4096 values that fill whole blocks, else the parameter's
//!   dtype. `state` `int8`, `int4`, `fp8`: only with the torchao class of that format (the same
//!   fallback applies below the threshold); with any other class it is a failure;
//! * `optimizer` `AdamW8bit`, `Adam8bit`, `AdamW4bit`, `Adam4bit`, `AdamWFp8`, `AdamFp8`:
//!   [`TorchaoAdam`]'s constructors, with `lr`, `betas`, `eps`, `weight_decay`, `amsgrad` (and
//!   `bf16_stochastic_round: false`, its default) applied; `implementation` must then be
//!   `torchao-compiled`, and only then;
//! * `shape`: checked (non-negative integers whose product is the number of parameters); every
//!   optimizer of the crate is element-wise, so the shape changes nothing else;
//! * `expected_state`: compared with the same rule, by torch's state names (`momentum_buffer`,
//!   `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, `sum`, `square_avg`, `acc_delta`, `grad_avg`,
//!   `exp_inf`, Rprop's `prev` and `step_size`, ASGD's `ax`) for state kept as f32, bf16 or f16;
//!   a name the optimizer does not have, or a block-quantized state (which the crate does not
//!   dequantize for callers), is a failure;
//! * `indices` (sparse gradients): `SparseAdam` only, and `SparseAdam` only with them, float32,
//!   with a `shape` `[rows, cols]`; `grads[s]` holds `len(indices[s])·cols` values. Each step
//!   is replayed as a [`SparseGrad`] (`dim = cols`), the state planes are named `exp_avg` and
//!   `exp_avg_sq`, and `expected` is the whole table. The indices are passed as they are: an
//!   unsorted, repeated or out-of-range index fails the case with the crate's error;
//! * `optimizer` `Rprop` and `ASGD` (version 2 only): [`Rprop`] and [`Asgd`], with torch's
//!   names (`lr`, `etas`, `step_sizes`, `maximize`; `lr`, `lambd`, `alpha`, `t0`,
//!   `weight_decay`, `maximize`); Rprop's fresh state (`step_size = lr`) is written by
//!   `init_state_in`, ASGD's scalar state is carried from step to step;
//! * the optimizers `Adafactor`, `Muon`: not implemented by the crate, so such a case fails
//!   with a message saying so.
//!
//! Anything unknown (format, dtype, state, optimizer, implementation, hyperparameter) fails the
//! case or the file with a message naming it; nothing is skipped. In a version-1 file the
//! version-2 keys are rejected, so that they are never silently ignored.
//!
//! Environment:
//! * `TORCH_VECTORS`: `:`-separated further vector files, checked like the committed ones. A file
//!   that cannot be read or parsed, an unknown optimizer or an unknown hyperparameter fails the
//!   test with a message naming it.
//! * `TORCH_VECTORS_ACTUAL`: a directory; for each input `STEM.json` the test writes
//!   `STEM.actual.json`, the same document with every `expected` (and `expected_state`, where a
//!   case has one) replaced by the crate's own trajectory (`null` for a case the crate could not
//!   run). Values are written exactly: for `bfloat16`/`float16` cases they are values of that
//!   dtype. A file named in `TORCH_VECTORS` replaces the output of a committed file with the
//!   same stem (a `note:` line says so); two named files with the same stem are a failure.
//!
//! One line per file goes to stderr (visible even when libtest captures output):
//! `torch vectors: FILE: N cases, P passed, F failed` for a version-1 file;
//! `torch vectors: FILE: N cases, P passed, F failed; B of V values bit-identical` for a
//! version-2 file (`V` counts every compared parameter and state value of the cases whose
//! `expected` could be read; a case the crate could not run contributes no identical value);
//! `torch vectors: FILE: unusable: WHY` for a file that cannot be read or parsed. Each
//! `torchao-compiled` case adds a line `torch vectors: FILE: torchao case "NAME" (CLASS, DTYPE
//! params, FORMAT state, N values, S steps; B of V values bit-identical): passed` (or `FAILED`),
//! FORMAT being the state format the replay used (`int8`, or `f32`/`bf16` below torchao's
//! quantization threshold).
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
#![allow(
    clippy::explicit_write,
    reason = "libtest captures eprintln!, not writes to io::stderr(): the report lines must show"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Asgd, Grads, NAdam, Optimizer, Params, RAdam, RMSprop, Rprop,
    Sgd, SparseAdam, SparseGrad, State, StateFormat, StepPlan, TorchaoAdam, bf16, f16,
};
use serde_json::{Map, Value};

const FORMAT_V1: &str = "torch-optim-vectors/1";
const FORMAT_V2: &str = "torch-optim-vectors/2";

/// At most this many failure reports are shown in the panic message (all are counted).
const SHOWN_FAILURES: usize = 40;

/// The keys a version-2 case may have beyond version 1's.
const V2_KEYS: [&str; 5] = ["dtype", "state", "shape", "indices", "expected_state"];

#[test]
fn torch_vectors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = committed_files(&root.join("tests/vectors"));
    assert!(
        !files.is_empty(),
        "no *.json vector files under tests/vectors"
    );
    let committed = files.len();
    if let Ok(extra) = std::env::var("TORCH_VECTORS") {
        files.extend(
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
    }
    let actual_dir = std::env::var_os("TORCH_VECTORS_ACTUAL")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);

    let mut failures = Vec::new();
    // Which input wrote each `STEM.actual.json`, and whether it was a committed file.
    let mut written: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let mut cases = 0;
    for (index, file) in files.iter().enumerate() {
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let report = check_file(file);
        match &report {
            Ok(r) => {
                let failed = r.failed_cases;
                cases += r.cases.len();
                let mut text = format!(
                    "{shown}: {} cases, {} passed, {failed} failed",
                    r.cases.len(),
                    r.cases.len() - failed
                );
                if r.version == Version::V2 {
                    text.push_str(&format!(
                        "; {} of {} values bit-identical",
                        r.identical, r.values
                    ));
                }
                line(&text);
                for torchao in &r.torchao_lines {
                    line(&format!("{shown}: {torchao}"));
                }
                failures.extend(r.failures.iter().map(|f| format!("{shown}: {f}")));
            }
            Err(e) => {
                line(&format!("{shown}: unusable: {e}"));
                failures.push(format!("{shown}: {e}"));
            }
        }
        if let (Some(dir), Ok(r)) = (&actual_dir, &report) {
            // A file named in TORCH_VECTORS takes the place of a committed file with the same
            // stem; two named files with the same stem cannot both be written.
            let stem = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let is_committed = index < committed;
            match written.get(&stem) {
                Some((other, true)) if !is_committed => {
                    let note = format!("note: {stem}.actual.json is from {shown}, not {other}");
                    writeln!(std::io::stderr(), "{note}").unwrap();
                }
                Some((other, _)) => {
                    failures.push(format!(
                        "{shown}: {stem}.actual.json was already written for {other}"
                    ));
                    continue;
                }
                None => {}
            }
            written.insert(stem.clone(), (shown.clone(), is_committed));
            if let Err(e) = write_actual(&dir.join(format!("{stem}.actual.json")), r) {
                failures.push(format!("{shown}: writing the actual trajectories: {e}"));
            }
        }
    }
    if !failures.is_empty() {
        let mut msg = format!(
            "{} torch vector failure(s) in {} files ({cases} cases read):\n",
            failures.len(),
            files.len()
        );
        for f in failures.iter().take(SHOWN_FAILURES) {
            msg.push_str("  ");
            msg.push_str(f);
            msg.push('\n');
        }
        if failures.len() > SHOWN_FAILURES {
            msg.push_str(&format!(
                "  ... and {} more\n",
                failures.len() - SHOWN_FAILURES
            ));
        }
        panic!("{msg}");
    }
}

/// Prints one report line straight to stderr, which libtest does not capture.
fn line(text: &str) {
    writeln!(std::io::stderr(), "torch vectors: {text}").unwrap();
}

fn committed_files(dir: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// The format version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// What the crate computed for one case: the parameters after each step, and (when the case
/// has `expected_state`) the state after each step under torch's names.
struct Trajectory {
    params: Vec<Vec<f32>>,
    state: Option<BTreeMap<String, Vec<Vec<f32>>>>,
}

/// The outcome of one file: its parsed document, each case's trajectory, and the failures.
struct FileReport {
    version: Version,
    document: Map<String, Value>,
    cases: Vec<Option<Trajectory>>,
    failed_cases: usize,
    failures: Vec<String>,
    /// Compared values that were bit-identical to the reference, and all compared values.
    identical: usize,
    values: usize,
    /// One line per `torchao-compiled` case.
    torchao_lines: Vec<String>,
}

/// Reads and checks one file. `Err` when the file as a whole cannot be used.
fn check_file(path: &Path) -> Result<FileReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("cannot parse as JSON: {e}"))?;
    let Value::Object(document) = value else {
        return Err("not a JSON object".into());
    };
    let version = match document.get("format") {
        Some(Value::String(f)) if f == FORMAT_V1 => Version::V1,
        Some(Value::String(f)) if f == FORMAT_V2 => Version::V2,
        other => {
            return Err(format!(
                "\"format\" is {other:?}, expected {FORMAT_V1:?} or {FORMAT_V2:?}"
            ));
        }
    };
    let Some(Value::Array(cases)) = document.get("cases") else {
        return Err("no \"cases\" array".into());
    };
    let mut names = BTreeSet::new();
    let mut report = FileReport {
        version,
        document: Map::new(),
        cases: Vec::with_capacity(cases.len()),
        failed_cases: 0,
        failures: Vec::new(),
        identical: 0,
        values: 0,
        torchao_lines: Vec::new(),
    };
    for (k, case) in cases.iter().enumerate() {
        let checked = check_case(case, version);
        report.cases.push(checked.trajectory);
        report.identical += checked.identical;
        report.values += checked.values;
        let mut outcome = checked.outcome;
        let label = match case.get("name") {
            Some(Value::String(name)) => {
                if !names.insert(name.clone()) && outcome.is_ok() {
                    outcome = Err("duplicate case name".to_owned());
                }
                format!("case {name:?}")
            }
            _ => format!("case #{k}"),
        };
        if let Some(summary) = checked.torchao_summary {
            let verdict = if outcome.is_ok() { "passed" } else { "FAILED" };
            report
                .torchao_lines
                .push(format!("torchao {label} ({summary}): {verdict}"));
        }
        if let Err(e) = outcome {
            report.failed_cases += 1;
            report.failures.push(format!("{label}: {e}"));
        }
    }
    report.document = document;
    Ok(report)
}

/// The dtype of a case's parameters and gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32,
    Bf16,
    F16,
}

impl Dtype {
    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "float32" => Ok(Dtype::F32),
            "bfloat16" => Ok(Dtype::Bf16),
            "float16" => Ok(Dtype::F16),
            other => Err(format!(
                "unknown dtype {other:?} (known: float32, bfloat16, float16)"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::Bf16 => "bfloat16",
            Dtype::F16 => "float16",
        }
    }

    /// The state format that keeps values in this dtype.
    fn state_format(self) -> StateFormat {
        match self {
            Dtype::F32 => StateFormat::F32,
            Dtype::Bf16 => StateFormat::Bf16,
            Dtype::F16 => StateFormat::F16,
        }
    }

    /// `x` rounded to this dtype (to nearest even), as an f32.
    fn round(self, x: f32) -> f32 {
        match self {
            Dtype::F32 => x,
            Dtype::Bf16 => bf16::from_f32(x).to_f32(),
            Dtype::F16 => f16::from_f32(x).to_f32(),
        }
    }

    /// Whether `x` is a value of this dtype (every NaN counts as one).
    fn holds(self, x: f32) -> bool {
        x.is_nan() || self.round(x).to_bits() == x.to_bits()
    }

    /// The position of a finite value of this dtype on the number line, counted in values of
    /// the dtype from zero (`±0` both 0), so that two values' difference is their distance in
    /// units in the last place.
    fn place(self, x: f32) -> i64 {
        let (bits, sign) = match self {
            Dtype::F32 => (i64::from(x.to_bits() & 0x7fff_ffff), x.to_bits() >> 31),
            Dtype::Bf16 => {
                let b = bf16::from_f32(x).to_bits();
                (i64::from(b & 0x7fff), u32::from(b >> 15))
            }
            Dtype::F16 => {
                let b = f16::from_f32(x).to_bits();
                (i64::from(b & 0x7fff), u32::from(b >> 15))
            }
        };
        if sign == 1 { -bits } else { bits }
    }
}

/// The torch state format names of a case's `state` key.
fn parse_state(name: &str) -> Result<StateFormat, String> {
    match name {
        "int8" => Ok(StateFormat::Int8),
        "int4" => Ok(StateFormat::Int4),
        "fp8" => Ok(StateFormat::Fp8),
        other => Err(format!(
            "unknown state {other:?} (known: int8, int4, fp8; absent for the reference's own)"
        )),
    }
}

/// Values per step: `rows[s][i]` is element `i` after step `s + 1`.
type Rows = [Vec<f32>];

/// A case's inputs, parsed.
struct Inputs {
    version: Version,
    dtype: Dtype,
    /// The case's `state` key, parsed.
    state: Option<StateFormat>,
    implementation: String,
    params: Vec<f32>,
    grads: Vec<Vec<f32>>,
    /// State names to record, when the case has `expected_state`.
    state_names: Option<Vec<String>>,
    /// A sparse case (`indices`): the row length and each step's rows.
    sparse: Option<Sparse>,
}

/// The rows each step's sparse gradient touches, of a `[rows, dim]` parameter.
struct Sparse {
    dim: usize,
    indices: Vec<Vec<i64>>,
}

/// `indices` with the case's `shape` (which must be `[rows, cols]` holding `n` values): one
/// array of integers per step.
fn parse_sparse(indices: &Value, shape: Option<&Value>, n: usize) -> Result<Sparse, String> {
    let dims: Option<Vec<u64>> = shape
        .and_then(Value::as_array)
        .and_then(|d| d.iter().map(Value::as_u64).collect());
    let dim = match dims.as_deref() {
        Some(&[rows, cols]) if rows.checked_mul(cols) == Some(n as u64) && cols > 0 => {
            cols as usize
        }
        _ => {
            return Err(format!(
                "\"indices\" needs a \"shape\" [rows, cols] with cols > 0 holding the {n} \
                 parameters (found {shape:?})"
            ));
        }
    };
    let steps = indices
        .as_array()
        .ok_or_else(|| format!("\"indices\" {indices} is not an array"))?;
    let indices = steps
        .iter()
        .enumerate()
        .map(|(s, row)| {
            row.as_array()
                .and_then(|r| r.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>())
                .ok_or_else(|| format!("indices[{s}] {row} is not an array of integers"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Sparse { dim, indices })
}

/// A sparse case's `grads`: step `s` holds `len(indices[s])·dim` values.
fn sparse_rows(v: &Value, sparse: &Sparse, dtype: Dtype) -> Result<Vec<Vec<f32>>, String> {
    let items = v.as_array().ok_or("\"grads\" is not an array")?;
    if items.len() != sparse.indices.len() {
        return Err(format!(
            "{} grads rows for {} indices rows",
            items.len(),
            sparse.indices.len()
        ));
    }
    items
        .iter()
        .zip(&sparse.indices)
        .enumerate()
        .map(|(s, (row, indices))| {
            let row = typed_floats(row, &format!("grads[{s}]"), dtype)?;
            let want = indices.len() * sparse.dim;
            if row.len() == want {
                Ok(row)
            } else {
                Err(format!(
                    "grads[{s}] has {} values, {} rows of {} need {want}",
                    row.len(),
                    indices.len(),
                    sparse.dim
                ))
            }
        })
        .collect()
}

/// The result of checking one case.
struct CaseCheck {
    trajectory: Option<Trajectory>,
    outcome: Result<(), String>,
    identical: usize,
    values: usize,
    /// For a `torchao-compiled` case: what it is and how many values were bit-identical.
    torchao_summary: Option<String>,
}

/// Replays one case: the crate's trajectory (when it could run), the verdict and the counts.
fn check_case(case: &Value, version: Version) -> CaseCheck {
    let mut check = CaseCheck {
        trajectory: None,
        outcome: Ok(()),
        identical: 0,
        values: 0,
        torchao_summary: None,
    };
    check.outcome = check_case_into(case, version, &mut check);
    check
}

fn check_case_into(case: &Value, version: Version, check: &mut CaseCheck) -> Result<(), String> {
    let Value::Object(case) = case else {
        return Err("not a JSON object".to_owned());
    };
    field(case, "name")?
        .as_str()
        .ok_or("\"name\" is not a string")?;
    let optimizer = field(case, "optimizer")?
        .as_str()
        .ok_or("\"optimizer\" is not a string")?;
    let implementation = field(case, "implementation")?
        .as_str()
        .ok_or("\"implementation\" is not a string")?;
    let implementations: &[&str] = match version {
        Version::V1 => &["fused", "single", "foreach"],
        Version::V2 => &["fused", "single", "foreach", "torchao-compiled"],
    };
    if !implementations.contains(&implementation) {
        return Err(format!("unknown implementation {implementation:?}"));
    }
    field(case, "exact")?
        .as_bool()
        .ok_or("\"exact\" is not a bool")?;
    let hyper = field(case, "hyper")?
        .as_object()
        .ok_or("\"hyper\" is not an object")?;
    if version == Version::V1
        && let Some(key) = V2_KEYS.iter().find(|k| case.contains_key(**k))
    {
        return Err(format!(
            "{key:?} is a {FORMAT_V2} key, but the file is {FORMAT_V1}"
        ));
    }
    let dtype = match case.get("dtype") {
        None => Dtype::F32,
        Some(Value::String(d)) => Dtype::parse(d)?,
        Some(other) => return Err(format!("\"dtype\" {other} is not a string")),
    };
    let state = match case.get("state") {
        None => None,
        Some(Value::String(s)) => Some(parse_state(s)?),
        Some(other) => return Err(format!("\"state\" {other} is not a string")),
    };
    let params = typed_floats(field(case, "params")?, "params", dtype)?;
    if let Some(shape) = case.get("shape") {
        check_shape(shape, params.len())?;
    }
    let sparse = match case.get("indices") {
        None => None,
        Some(indices) => Some(parse_sparse(indices, case.get("shape"), params.len())?),
    };
    let grads = match &sparse {
        None => rows(field(case, "grads")?, "grads", params.len(), dtype)?,
        Some(sparse) => sparse_rows(field(case, "grads")?, sparse, dtype)?,
    };
    let expected_state = match case.get("expected_state") {
        None => None,
        Some(Value::Object(states)) => Some(states),
        Some(other) => return Err(format!("\"expected_state\" {other} is not an object")),
    };
    let inputs = Inputs {
        version,
        dtype,
        state,
        implementation: implementation.to_owned(),
        params,
        grads,
        state_names: expected_state.map(|s| s.keys().cloned().collect()),
        sparse,
    };
    let n = inputs.params.len();
    let steps = inputs.grads.len();

    // The expected values, read before the replay so that they are counted even when the
    // crate cannot run the case.
    let expected = rows(field(case, "expected")?, "expected", n, dtype).and_then(|rows| {
        if rows.len() == steps {
            Ok(rows)
        } else {
            Err(format!(
                "{} expected rows for {steps} gradient rows",
                rows.len()
            ))
        }
    });
    let expected_state: Result<BTreeMap<String, Vec<Vec<f32>>>, String> = match expected_state {
        None => Ok(BTreeMap::new()),
        Some(states) => states
            .iter()
            .map(|(name, v)| {
                let what = format!("expected_state.{name}");
                let rows = rows(v, &what, n, dtype)?;
                if rows.len() == steps {
                    Ok((name.clone(), rows))
                } else {
                    Err(format!(
                        "{what} has {} rows for {steps} gradient rows",
                        rows.len()
                    ))
                }
            })
            .collect(),
    };
    if let (Ok(e), Ok(s)) = (&expected, &expected_state) {
        check.values = e.iter().chain(s.values().flatten()).map(Vec::len).sum();
    }

    // Version 1's messages are kept: `OPTIMIZER HYPER: WHY` when the crate cannot run the case,
    // `OPTIMIZER (IMPLEMENTATION) HYPER n=N: WHY` when a value fails.
    let hyper_json = Value::Object(hyper.clone());
    let ran = replay_named(optimizer, hyper, &inputs)
        .map_err(|e| format!("{optimizer} {hyper_json}: {e}"));
    let is_torchao = implementation == "torchao-compiled";
    if is_torchao {
        let state = match &ran {
            Ok((_, format)) => format!("{} state", format_name(*format)),
            Err(_) => "could not run".to_owned(),
        };
        check.torchao_summary = Some(format!(
            "{optimizer}, {} params, {state}, {n} values, {steps} steps",
            dtype.name(),
        ));
    }
    let (trajectory, _) = ran?;
    let trajectory = check.trajectory.insert(trajectory);
    let expected = expected?;
    let expected_state = expected_state?;

    // Every compared array, with its label: the parameters, then each state.
    let mut compared: Vec<(String, &Rows, &Rows)> =
        vec![("expected".to_owned(), &expected, &trajectory.params)];
    for (name, rows) in &expected_state {
        let actual = trajectory
            .state
            .as_ref()
            .and_then(|s| s.get(name))
            .ok_or_else(|| format!("{optimizer} {hyper_json}: no crate state named {name:?}"))?;
        compared.push((format!("expected_state.{name}"), rows, actual));
    }
    let mut identical = 0;
    let mut first_difference = None;
    for (what, e, a) in &compared {
        let (same, first) = bit_identical(e, a);
        identical += same;
        if first_difference.is_none() {
            first_difference = first.map(|f| format!("{what}: {f}"));
        }
    }
    check.identical = identical;
    if let Some(summary) = &mut check.torchao_summary {
        summary.push_str(&format!(
            "; {identical} of {} values bit-identical",
            check.values
        ));
    }
    let described = match version {
        Version::V1 => format!("{optimizer} ({implementation}) {hyper_json} n={n}"),
        Version::V2 => format!(
            "{optimizer} ({implementation}) {hyper_json} {} n={n}",
            dtype.name()
        ),
    };
    // The 2-ulp rule: version 2 only, and a version-1 case is always float32.
    let ulps = (dtype != Dtype::F32).then_some(dtype);
    for (what, e, a) in &compared {
        if let Some(why) = first_failure(e, a, ulps) {
            return Err(match version {
                Version::V1 => format!("{described}: {why}"),
                Version::V2 => format!("{described}: {what}: {why}"),
            });
        }
    }
    if is_torchao && identical != check.values {
        return Err(format!(
            "{described}: passes the spec's rule but is not bit-identical, which this test \
             requires of torchao-compiled cases: {} of {} values differ; first at {}",
            check.values - identical,
            check.values,
            first_difference.unwrap_or_default()
        ));
    }
    Ok(())
}

fn format_name(format: StateFormat) -> &'static str {
    match format {
        StateFormat::F32 => "f32",
        StateFormat::Bf16 => "bf16",
        StateFormat::F16 => "f16",
        StateFormat::Int8 => "int8",
        StateFormat::Int4 => "int4",
        StateFormat::Fp8 => "fp8",
        _ => "unknown",
    }
}

fn field<'a>(case: &'a Map<String, Value>, key: &str) -> Result<&'a Value, String> {
    case.get(key).ok_or_else(|| format!("missing {key:?}"))
}

/// `shape`: non-negative integers whose product is `n`.
fn check_shape(shape: &Value, n: usize) -> Result<(), String> {
    let dims = shape
        .as_array()
        .ok_or_else(|| format!("\"shape\" {shape} is not an array"))?;
    let mut product: Option<usize> = Some(1);
    for d in dims {
        let d = d
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| format!("\"shape\" {shape} is not an array of non-negative integers"))?;
        product = product.and_then(|p| p.checked_mul(d));
    }
    if product == Some(n) {
        Ok(())
    } else {
        Err(format!("\"shape\" {shape} does not hold {n} parameters"))
    }
}

/// A float of the format: a number that is exactly an f32, or `"nan"`, `"inf"`, `"-inf"`.
fn float(v: &Value, at: &dyn Fn() -> String) -> Result<f32, String> {
    match v {
        Value::Number(n) => {
            let x = n
                .as_f64()
                .ok_or_else(|| format!("{}: {n} is not a float", at()))?;
            let f = x as f32;
            if f64::from(f) == x {
                Ok(f)
            } else {
                Err(format!("{}: {n} is not exactly an f32", at()))
            }
        }
        Value::String(s) if s == "nan" => Ok(f32::NAN),
        Value::String(s) if s == "inf" => Ok(f32::INFINITY),
        Value::String(s) if s == "-inf" => Ok(f32::NEG_INFINITY),
        other => Err(format!("{}: {other} is not a float", at())),
    }
}

/// An array of floats, each a value of `dtype`.
fn typed_floats(v: &Value, what: &str, dtype: Dtype) -> Result<Vec<f32>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("{what:?} is not an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let f = float(x, &|| format!("{what}[{i}]"))?;
            if dtype.holds(f) {
                Ok(f)
            } else {
                Err(format!(
                    "{what}[{i}]: {f:?} is not a {} value",
                    dtype.name()
                ))
            }
        })
        .collect()
}

/// An array of float arrays, each `n` long.
fn rows(v: &Value, what: &str, n: usize, dtype: Dtype) -> Result<Vec<Vec<f32>>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("{what:?} is not an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(s, row)| {
            let row = typed_floats(row, &format!("{what}[{s}]"), dtype)?;
            if row.len() == n {
                Ok(row)
            } else {
                Err(format!(
                    "{what}[{s}] has {} values, params has {n}",
                    row.len()
                ))
            }
        })
        .collect()
}

/// A hyperparameter value of the type the crate's field has.
trait Hyper: Sized {
    fn from_json(key: &str, v: &Value) -> Result<Self, String>;
}

impl Hyper for f64 {
    fn from_json(key: &str, v: &Value) -> Result<Self, String> {
        v.as_f64()
            .ok_or_else(|| format!("hyperparameter {key:?} = {v} is not a number"))
    }
}

impl Hyper for bool {
    fn from_json(key: &str, v: &Value) -> Result<Self, String> {
        v.as_bool()
            .ok_or_else(|| format!("hyperparameter {key:?} = {v} is not a bool"))
    }
}

impl Hyper for (f64, f64) {
    fn from_json(key: &str, v: &Value) -> Result<Self, String> {
        match v.as_array().map(Vec::as_slice) {
            Some([a, b]) => Ok((f64::from_json(key, a)?, f64::from_json(key, b)?)),
            _ => Err(format!(
                "hyperparameter {key:?} = {v} is not a pair of numbers"
            )),
        }
    }
}

/// `base` with each key of `hyper` set on the field of the same name; any other key is an
/// error naming it and the known ones.
macro_rules! configure {
    ($base:expr, $hyper:expr, [$($field:ident),* $(,)?]) => {{
        let mut opt = $base;
        for (key, value) in $hyper {
            match key.as_str() {
                $(stringify!($field) => opt.$field = Hyper::from_json(key, value)?,)*
                _ => {
                    return Err(format!(
                        "unknown hyperparameter {key:?} (known: {})",
                        [$(stringify!($field)),*].join(", ")
                    ))
                }
            }
        }
        opt
    }};
}

const OPTIMIZERS: &str =
    "SGD, Adam, AdamW, Adagrad, Adadelta, RMSprop, Adamax, NAdam, RAdam, SparseAdam";
/// Optimizers only `torch-optim-vectors/2` defines, implemented by the crate.
const OPTIMIZERS_V2: &str = "Rprop, ASGD";
const TORCHAO_OPTIMIZERS: &str = "AdamW8bit, Adam8bit, AdamW4bit, Adam4bit, AdamWFp8, AdamFp8";
/// Optimizers `torch-optim-vectors/2` defines that the crate does not implement.
const NOT_IMPLEMENTED: [&str; 2] = ["Adafactor", "Muon"];

/// The crate's optimizer for a torchao class name.
fn torchao_class(optimizer: &str) -> Option<TorchaoAdam> {
    Some(match optimizer {
        "AdamW8bit" => TorchaoAdam::adamw8bit(),
        "Adam8bit" => TorchaoAdam::adam8bit(),
        "AdamW4bit" => TorchaoAdam::adamw4bit(),
        "Adam4bit" => TorchaoAdam::adam4bit(),
        "AdamWFp8" => TorchaoAdam::adamw_fp8(),
        "AdamFp8" => TorchaoAdam::adam_fp8(),
        _ => return None,
    })
}

/// Maps a class name and its keyword arguments to the crate's optimizer, and replays the
/// gradients. Also returns the state format used.
fn replay_named(
    optimizer: &str,
    hyper: &Map<String, Value>,
    inputs: &Inputs,
) -> Result<(Trajectory, StateFormat), String> {
    if let Some(base) = torchao_class(optimizer) {
        if inputs.implementation != "torchao-compiled" {
            return Err(format!(
                "torchao's {optimizer} needs implementation \"torchao-compiled\", not {:?}",
                inputs.implementation
            ));
        }
        // torchao's `bf16_stochastic_round` (default false) draws its random bits from torch's
        // generator, which a vector file does not record: only the default can be replayed.
        let mut hyper = hyper.clone();
        match hyper.remove("bf16_stochastic_round") {
            None | Some(Value::Bool(false)) => {}
            Some(v) => {
                return Err(format!(
                    "hyperparameter \"bf16_stochastic_round\" = {v} is not supported (only \
                     false: torchao's random stream is not recorded in the vectors)"
                ));
            }
        }
        let opt = configure!(base, &hyper, [lr, betas, eps, weight_decay, amsgrad]);
        if let Some(state) = inputs.state
            && state != opt.format
        {
            return Err(format!(
                "state {:?} does not match {optimizer}'s {:?}",
                format_name(state),
                format_name(opt.format)
            ));
        }
        let format = opt.state_format_for(inputs.params.len(), inputs.dtype.state_format());
        let names = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];
        let planes = opt.planes();
        return replay(opt, format, &names[..planes], inputs).map(|t| (t, format));
    }
    if inputs.implementation == "torchao-compiled" {
        return Err(format!(
            "implementation \"torchao-compiled\" needs one of torchao's classes \
             ({TORCHAO_OPTIMIZERS}), not {optimizer:?}"
        ));
    }
    if let Some(state) = inputs.state {
        return Err(format!(
            "state {:?} is torchao's block-quantized state: only torchao's classes \
             ({TORCHAO_OPTIMIZERS}) keep it, torch.optim's {optimizer} keeps its state in the \
             parameter dtype",
            format_name(state)
        ));
    }
    let format = inputs.dtype.state_format();
    match (optimizer, &inputs.sparse) {
        ("SparseAdam", Some(sparse)) => {
            if inputs.dtype != Dtype::F32 {
                return Err(format!(
                    "SparseAdam is implemented for float32 tables, not {}",
                    inputs.dtype.name()
                ));
            }
            let opt = configure!(SparseAdam::default(), hyper, [lr, betas, eps, maximize]);
            return replay_sparse(opt, sparse, inputs).map(|t| (t, format));
        }
        ("SparseAdam", None) => {
            return Err("SparseAdam needs sparse gradients (\"indices\"), as torch's does".into());
        }
        (other, Some(_)) => {
            return Err(format!(
                "sparse gradients (\"indices\") are for SparseAdam only, not {other:?}"
            ));
        }
        _ => {}
    }
    let adam_names = |amsgrad: bool| -> &'static [&'static str] {
        if amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        }
    };
    match optimizer {
        "SGD" => {
            let opt = configure!(
                Sgd::default(),
                hyper,
                [lr, momentum, dampening, weight_decay, nesterov, maximize]
            );
            let names: &[&str] = if opt.momentum == 0.0 {
                &[]
            } else {
                &["momentum_buffer"]
            };
            replay(opt, format, names, inputs)
        }
        "Adam" => {
            let opt = configure!(
                Adam::default(),
                hyper,
                [
                    lr,
                    betas,
                    eps,
                    weight_decay,
                    amsgrad,
                    maximize,
                    decoupled_weight_decay
                ]
            );
            replay(opt, format, adam_names(opt.amsgrad), inputs)
        }
        // torch.optim.AdamW takes no `decoupled_weight_decay` argument: it is always on.
        "AdamW" => {
            let opt = configure!(
                Adam::adamw(),
                hyper,
                [lr, betas, eps, weight_decay, amsgrad, maximize]
            );
            replay(opt, format, adam_names(opt.amsgrad), inputs)
        }
        "Adagrad" => replay(
            configure!(
                Adagrad::default(),
                hyper,
                [
                    lr,
                    lr_decay,
                    weight_decay,
                    initial_accumulator_value,
                    eps,
                    maximize
                ]
            ),
            format,
            &["sum"],
            inputs,
        ),
        "Adadelta" => replay(
            configure!(
                Adadelta::default(),
                hyper,
                [lr, rho, eps, weight_decay, maximize]
            ),
            format,
            &["square_avg", "acc_delta"],
            inputs,
        ),
        "RMSprop" => {
            let opt = configure!(
                RMSprop::default(),
                hyper,
                [lr, alpha, eps, weight_decay, momentum, centered, maximize]
            );
            let mut names = vec!["square_avg"];
            if opt.momentum > 0.0 {
                names.push("momentum_buffer");
            }
            if opt.centered {
                names.push("grad_avg");
            }
            replay(opt, format, &names, inputs)
        }
        "Adamax" => replay(
            configure!(
                Adamax::default(),
                hyper,
                [lr, betas, eps, weight_decay, maximize]
            ),
            format,
            &["exp_avg", "exp_inf"],
            inputs,
        ),
        "NAdam" => replay(
            configure!(
                NAdam::default(),
                hyper,
                [
                    lr,
                    betas,
                    eps,
                    weight_decay,
                    momentum_decay,
                    decoupled_weight_decay,
                    maximize
                ]
            ),
            format,
            &["exp_avg", "exp_avg_sq"],
            inputs,
        ),
        "RAdam" => replay(
            configure!(
                RAdam::default(),
                hyper,
                [
                    lr,
                    betas,
                    eps,
                    weight_decay,
                    decoupled_weight_decay,
                    maximize
                ]
            ),
            format,
            &["exp_avg", "exp_avg_sq"],
            inputs,
        ),
        "Rprop" if inputs.version == Version::V2 => replay(
            configure!(Rprop::default(), hyper, [lr, etas, step_sizes, maximize]),
            format,
            &["prev", "step_size"],
            inputs,
        ),
        "ASGD" if inputs.version == Version::V2 => replay(
            configure!(
                Asgd::default(),
                hyper,
                [lr, lambd, alpha, t0, weight_decay, maximize]
            ),
            format,
            &["ax"],
            inputs,
        ),
        other if NOT_IMPLEMENTED.contains(&other) && inputs.version == Version::V2 => Err(format!(
            "optimizer {other:?} is defined by {FORMAT_V2} but not implemented by this crate"
        )),
        other if inputs.version == Version::V2 => Err(format!(
            "unknown optimizer {other:?} (known: {OPTIMIZERS}, {OPTIMIZERS_V2}, {TORCHAO_OPTIMIZERS})"
        )),
        other => Err(format!("unknown optimizer {other:?} (known: {OPTIMIZERS})")),
    }
    .map(|t| (t, format))
}

/// Parameters of one dtype, owned.
enum ParamBuf {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
}

impl ParamBuf {
    fn new(dtype: Dtype, values: &[f32]) -> Self {
        match dtype {
            Dtype::F32 => ParamBuf::F32(values.to_vec()),
            Dtype::Bf16 => ParamBuf::Bf16(values.iter().copied().map(bf16::from_f32).collect()),
            Dtype::F16 => ParamBuf::F16(values.iter().copied().map(f16::from_f32).collect()),
        }
    }

    fn params(&mut self) -> Params<'_> {
        match self {
            ParamBuf::F32(p) => Params::F32(p),
            ParamBuf::Bf16(p) => Params::Bf16(p),
            ParamBuf::F16(p) => Params::F16(p),
        }
    }

    fn grads(&self) -> Grads<'_> {
        match self {
            ParamBuf::F32(p) => Grads::F32(p),
            ParamBuf::Bf16(p) => Grads::Bf16(p),
            ParamBuf::F16(p) => Grads::F16(p),
        }
    }

    fn to_f32(&self) -> Vec<f32> {
        match self {
            ParamBuf::F32(p) => p.clone(),
            ParamBuf::Bf16(p) => p.iter().map(|x| x.to_f32()).collect(),
            ParamBuf::F16(p) => p.iter().map(|x| x.to_f32()).collect(),
        }
    }
}

/// One tensor's state buffers, owned.
enum StateBuf {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
    Block {
        format: StateFormat,
        codes: Vec<u8>,
        scales: Vec<f32>,
    },
}

impl StateBuf {
    fn new(format: StateFormat, planes: usize, n: usize) -> Self {
        let layout = format.layout(planes, n);
        match format {
            StateFormat::F32 => StateBuf::F32(vec![0.0; layout.values]),
            StateFormat::Bf16 => StateBuf::Bf16(vec![bf16::ZERO; layout.values]),
            StateFormat::F16 => StateBuf::F16(vec![f16::ZERO; layout.values]),
            _ => StateBuf::Block {
                format,
                codes: vec![0; layout.codes],
                scales: vec![0.0; layout.scales],
            },
        }
    }

    fn state(&mut self) -> State<'_> {
        match self {
            StateBuf::F32(v) => State::F32(v),
            StateBuf::Bf16(v) => State::Bf16(v),
            StateBuf::F16(v) => State::F16(v),
            StateBuf::Block {
                format,
                codes,
                scales,
            } => match format {
                StateFormat::Int8 => State::Int8 { codes, scales },
                StateFormat::Int4 => State::Int4 { codes, scales },
                StateFormat::Fp8 => State::Fp8 { codes, scales },
                other => panic!("{other:?} is not a block format"),
            },
        }
    }

    /// The values as f32, or `None` for block-quantized state.
    fn values(&self) -> Option<Vec<f32>> {
        match self {
            StateBuf::F32(v) => Some(v.clone()),
            StateBuf::Bf16(v) => Some(v.iter().map(|x| x.to_f32()).collect()),
            StateBuf::F16(v) => Some(v.iter().map(|x| x.to_f32()).collect()),
            StateBuf::Block { .. } => None,
        }
    }
}

/// Runs the steps from a fresh state in `format` and returns the parameters (and the named
/// state planes, when the case asks for them) after each step.
fn replay<O: Optimizer>(
    opt: O,
    format: StateFormat,
    names: &[&str],
    inputs: &Inputs,
) -> Result<Trajectory, String> {
    let n = inputs.params.len();
    let planes = opt.state_len(n).checked_div(n).unwrap_or(0);
    assert_eq!(planes, names.len(), "{opt:?}: state plane names");
    let wanted = match &inputs.state_names {
        None => None,
        Some(wanted) => {
            for name in wanted {
                if !names.contains(&name.as_str()) {
                    return Err(format!(
                        "no state named {name:?} (this configuration has: {})",
                        names.join(", ")
                    ));
                }
            }
            if !matches!(
                format,
                StateFormat::F32 | StateFormat::Bf16 | StateFormat::F16
            ) {
                return Err(format!(
                    "\"expected_state\" cannot be compared for {} block-quantized state",
                    format_name(format)
                ));
            }
            Some(wanted)
        }
    };
    let mut p = ParamBuf::new(inputs.dtype, &inputs.params);
    let mut state = StateBuf::new(format, planes, n);
    opt.init_state_in(state.state()).unwrap();
    let mut scalars = O::Scalars::default();
    let mut trajectory = Trajectory {
        params: Vec::with_capacity(inputs.grads.len()),
        state: wanted.map(|w| w.iter().map(|name| (name.clone(), Vec::new())).collect()),
    };
    for (k, g) in inputs.grads.iter().enumerate() {
        let step = k as u64 + 1;
        let g = ParamBuf::new(inputs.dtype, g);
        let plan = opt
            .plan(step, &scalars)
            .map_err(|e| format!("step {step}: {e}"))?;
        plan.apply_to(p.params(), g.grads(), state.state())
            .map_err(|e| format!("step {step}: {e}"))?;
        scalars = plan.scalars_after();
        trajectory.params.push(p.to_f32());
        if let Some(recorded) = &mut trajectory.state {
            let values = state.values().unwrap();
            for (name, rows) in recorded.iter_mut() {
                let j = names.iter().position(|x| x == name).unwrap();
                rows.push(values[j * n..(j + 1) * n].to_vec());
            }
        }
    }
    Ok(trajectory)
}

/// Replays a SparseAdam case from a fresh (zero) state: the whole table after each step, and
/// the state planes `exp_avg` and `exp_avg_sq` when the case asks for them.
fn replay_sparse(opt: SparseAdam, sparse: &Sparse, inputs: &Inputs) -> Result<Trajectory, String> {
    let names = ["exp_avg", "exp_avg_sq"];
    if let Some(wanted) = &inputs.state_names
        && let Some(name) = wanted.iter().find(|w| !names.contains(&w.as_str()))
    {
        return Err(format!(
            "no state named {name:?} (this configuration has: {})",
            names.join(", ")
        ));
    }
    let n = inputs.params.len();
    let mut p = inputs.params.clone();
    let mut state = vec![0.0f32; opt.state_len(n)];
    let mut trajectory = Trajectory {
        params: Vec::with_capacity(inputs.grads.len()),
        state: inputs
            .state_names
            .as_ref()
            .map(|w| w.iter().map(|name| (name.clone(), Vec::new())).collect()),
    };
    for (k, (g, indices)) in inputs.grads.iter().zip(&sparse.indices).enumerate() {
        let step = k as u64 + 1;
        opt.step(
            step,
            &mut p,
            SparseGrad::new(sparse.dim, indices, g),
            &mut state,
        )
        .map_err(|e| format!("step {step}: {e}"))?;
        trajectory.params.push(p.clone());
        if let Some(recorded) = &mut trajectory.state {
            for (name, rows) in recorded.iter_mut() {
                let j = names.iter().position(|x| x == name).unwrap();
                rows.push(state[j * n..(j + 1) * n].to_vec());
            }
        }
    }
    Ok(trajectory)
}

/// The pass rule for one element, `scale` being `max(1, max_j |e_j|)` of its step, and `ulps`
/// the dtype whose 2-ulp rule also applies (version 2, bf16 and f16 cases).
fn passes(e: f32, a: f32, scale: f64, ulps: Option<Dtype>) -> bool {
    if (e.is_nan() && a.is_nan()) || (e.is_infinite() && e == a) {
        return true;
    }
    let (e64, a64) = (f64::from(e), f64::from(a));
    if (a64 - e64).abs() <= 1e-5 * e64.abs() + 1e-6 * scale {
        return true;
    }
    match ulps {
        Some(dtype) if e.is_finite() && a.is_finite() => {
            (dtype.place(a) - dtype.place(e)).abs() <= 2
        }
        _ => false,
    }
}

/// The first step and element that fail the pass rule, with both values.
fn first_failure(
    expected: &[Vec<f32>],
    actual: &[Vec<f32>],
    ulps: Option<Dtype>,
) -> Option<String> {
    for (s, (e_row, a_row)) in expected.iter().zip(actual).enumerate() {
        let scale = e_row.iter().map(|x| f64::from(x.abs())).fold(1.0, f64::max);
        for (i, (&e, &a)) in e_row.iter().zip(a_row).enumerate() {
            if !passes(e, a, scale, ulps) {
                let tol = 1e-5 * f64::from(e).abs() + 1e-6 * scale;
                let mut why = format!(
                    "step {} (expected[{s}]) element {i}: torch {e:?}, crate {a:?} \
                     (|diff| {:e}, tolerance {tol:e}",
                    s + 1,
                    (f64::from(a) - f64::from(e)).abs()
                );
                if let Some(dtype) = ulps
                    && e.is_finite()
                    && a.is_finite()
                {
                    why.push_str(&format!(
                        ", {} {} ulps apart, at most 2 allowed",
                        (dtype.place(a) - dtype.place(e)).abs(),
                        dtype.name()
                    ));
                }
                why.push(')');
                return Some(why);
            }
        }
    }
    None
}

/// How many values are bit-identical (NaN compared as a class), and the first that is not.
fn bit_identical(expected: &[Vec<f32>], actual: &[Vec<f32>]) -> (usize, Option<String>) {
    let mut same = 0;
    let mut first = None;
    for (s, (e_row, a_row)) in expected.iter().zip(actual).enumerate() {
        for (i, (&e, &a)) in e_row.iter().zip(a_row).enumerate() {
            if e.to_bits() == a.to_bits() || (e.is_nan() && a.is_nan()) {
                same += 1;
            } else if first.is_none() {
                first = Some(format!(
                    "step {} element {i}: reference {e:?} ({:#010x}), crate {a:?} ({:#010x})",
                    s + 1,
                    e.to_bits(),
                    a.to_bits()
                ));
            }
        }
    }
    (same, first)
}

fn json_float(x: f32) -> Value {
    if x.is_nan() {
        Value::from("nan")
    } else if x == f32::INFINITY {
        Value::from("inf")
    } else if x == f32::NEG_INFINITY {
        Value::from("-inf")
    } else {
        Value::from(f64::from(x))
    }
}

fn json_rows(rows: &[Vec<f32>]) -> Value {
    Value::Array(
        rows.iter()
            .map(|row| Value::Array(row.iter().copied().map(json_float).collect()))
            .collect(),
    )
}

/// Writes `STEM.actual.json`: the input document with the crate's trajectories as `expected`
/// (and `expected_state`).
fn write_actual(path: &Path, report: &FileReport) -> Result<(), String> {
    let mut document = report.document.clone();
    if let Some(Value::Array(cases)) = document.get_mut("cases") {
        for (case, trajectory) in cases.iter_mut().zip(&report.cases) {
            if let Value::Object(case) = case {
                let actual = match trajectory {
                    Some(t) => json_rows(&t.params),
                    None => Value::Null,
                };
                case.insert("expected".to_owned(), actual);
                if case.contains_key("expected_state") {
                    let actual = match trajectory.as_ref().and_then(|t| t.state.as_ref()) {
                        Some(states) => Value::Object(
                            states
                                .iter()
                                .map(|(name, rows)| (name.clone(), json_rows(rows)))
                                .collect(),
                        ),
                        None => Value::Null,
                    };
                    case.insert("expected_state".to_owned(), actual);
                }
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string(&Value::Object(document)).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}
