//! How the tests read a refusal: its `google.rpc.ErrorInfo` reason and `google.rpc.BadRequest`
//! field paths, and the rows of a bad-input table (one rule each: code, reason, field).

use tonic::Code;
use tonic_types::StatusExt;

/// The `ErrorInfo` reason of a refusal ("" when it has none).
pub(crate) fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// The `BadRequest` field paths of a refusal, in order (none when it has no `BadRequest`).
pub(crate) fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// One rule of a bad-input table broken: the call (of the module's own `C`) and the refusal it
/// must get.
pub(crate) struct Row<C> {
    /// The rule, for a person.
    pub(crate) reason: &'static str,
    /// The call breaking it.
    pub(crate) call: C,
    /// The gRPC code expected.
    pub(crate) code: Code,
    /// The `ErrorInfo.reason` expected.
    pub(crate) info: &'static str,
    /// The `BadRequest` field path expected, when the error names a field.
    pub(crate) field: Option<&'static str>,
}

/// Asserts a refusal: its code, `ErrorInfo` reason and `BadRequest` field (none when `None`).
pub(crate) fn assert_refused(status: &tonic::Status, code: Code, info: &str, field: Option<&str>) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status), info, "{status:?}");
    let expected: Vec<String> = field.map(|f| vec![f.to_string()]).unwrap_or_default();
    assert_eq!(fields(status), expected, "{status:?}");
}

/// What is wrong with the answer to a call of a bad-input row that expects `code`, the reason
/// `info` and the field `field` (an `INVALID_ARGUMENT` row must name one); empty when nothing.
pub(crate) fn problems(result: Result<(), tonic::Status>, code: Code, info: &str, field: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    let status = match result {
        Ok(()) => return vec![format!("succeeded; expected {code:?} {info}")],
        Err(status) => status,
    };
    if status.code() != code {
        problems.push(format!("code {:?}, expected {code:?} ({})", status.code(), status.message()));
    }
    let got = status.get_error_details().error_info().map(|i| i.reason.clone());
    if got.as_deref() != Some(info) {
        problems.push(format!("ErrorInfo reason {got:?}, expected {info}"));
    }
    let fields = fields(&status);
    match field {
        Some(f) if fields != [f] => {
            problems.push(format!("BadRequest fields {fields:?}, expected [{f:?}] ({})", status.message()))
        }
        None if !fields.is_empty() => problems.push(format!("BadRequest fields {fields:?}, expected none")),
        _ => {}
    }
    if code == Code::InvalidArgument && field.is_none() {
        problems.push("an INVALID_ARGUMENT row must name its field".into());
    }
    problems
}
