//! Every write held to its schema: unknown fields per `fieldValidation`,
//! and a custom resource pruned, defaulted and validated.

use super::*;

/// Drop the fields `object`'s schema does not declare, as `options` asks
/// (an error naming them under Strict, a warning under Warn); then, for a
/// custom resource, prune nulls, fill in defaults and validate it against
/// its CRD's schema.
pub(crate) fn conform_to_schema(
    rt: &ResourceType,
    object: &mut Value,
    options: &WriteOptions,
) -> Result<(), ApiError> {
    let schema = rt.schema();
    let before = options.patching.then(|| object.to_string());
    let unknown = conform::prune_unknown(schema, object);
    if let (Some(patched), FieldValidation::Strict, false) =
        (before, options.validation, unknown.is_empty())
    {
        // What the real server says of a patch whose result has unknown fields.
        let fields: Vec<String> = unknown
            .iter()
            .map(|p| format!("unknown field {p:?}"))
            .collect();
        return Err(ApiError::invalid(
            "",
            "",
            format!(
                "patch: Invalid value: {patched:?}: strict decoding error: {}",
                fields.join(", ")
            ),
        ));
    }
    unknown_fields(rt, unknown, options)?;
    if !rt.custom || schema.is_any() {
        return Ok(());
    }
    conform::prune_nulls(schema, object);
    conform::apply_defaults(schema, object);
    let mut causes = Vec::new();
    if options.status {
        // A status write is validated on status alone; the field paths say
        // where, the details do not (as the real server words them).
        if let Some(status) = object.get("status") {
            conform::validate(schema.field("status"), status, "", &mut causes);
            for cause in &mut causes {
                cause.field = format!("status.{}", cause.field)
                    .trim_end_matches('.')
                    .to_owned();
            }
        }
    } else if rt.status {
        // The main resource ignores status (the subresource owns it).
        let mut without_status = object.clone();
        if let Some(map) = without_status.as_object_mut() {
            map.remove("status");
        }
        conform::validate(schema, &without_status, "", &mut causes);
    } else {
        conform::validate(schema, object, "", &mut causes);
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_causes(
        &validate::qualified_kind(rt),
        &name_of(object),
        &causes,
    ))
}

/// What the unknown fields of a write (their paths) do under `options`.
fn unknown_fields(
    rt: &ResourceType,
    unknown: Vec<String>,
    options: &WriteOptions,
) -> Result<(), ApiError> {
    if unknown.is_empty() {
        return Ok(());
    }
    match options.validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            for path in unknown {
                options.warnings.push(format!("unknown field {path:?}"));
            }
            Ok(())
        }
        FieldValidation::Strict => {
            let fields: Vec<String> = unknown
                .iter()
                .map(|path| format!("unknown field {path:?}"))
                .collect();
            Err(ApiError::bad_request(format!(
                "{kind} in version {:?} cannot be handled as a {kind}: strict decoding error: {}",
                rt.version,
                fields.join(", "),
                kind = rt.kind
            )))
        }
    }
}
