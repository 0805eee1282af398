//! PATCH in its four kinds (merge, JSON, strategic merge and server-side
//! apply, which may create the object), and how apply conflicts are worded.

use super::*;

/// The kinds of PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/apply-patch+yaml`.
    Apply,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
}

impl Store {
    /// Patch an object. `apply` is server-side apply (creating the object if
    /// needed, which the flag reports); the other kinds are merge, JSON and
    /// strategic-merge patches.
    pub fn patch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: Value,
        options: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let mut state = self.lock();
        let old = state.get(rt, namespace, name).cloned();
        let now = now();
        match kind {
            PatchKind::Apply => {
                let mut applied = patch;
                if let Some(ns) = namespace
                    && rt.namespaced
                {
                    metadata(&mut applied).insert("namespace".to_owned(), json!(ns));
                }
                validate::identity(rt, &applied, namespace.filter(|_| rt.namespaced))?;
                if name_of(&applied) != name {
                    return Err(ApiError::bad_request(
                        "the name of the object does not match the name on the URL",
                    ));
                }
                if old.is_none() && options.status {
                    return Err(ApiError::not_found(&rt.qualified(), name));
                }
                // A resourceVersion in an applied configuration is a precondition too.
                let wanted = string_at(&applied, "/metadata/resourceVersion");
                if let Some(old) = &old
                    && !wanted.is_empty()
                    && wanted != string_at(old, "/metadata/resourceVersion")
                {
                    return Err(modified(rt, name));
                }
                let subresource = if options.status { "status" } else { "" };
                let schema = rt.schema();
                if let Some(why) = crate::schema::conform::undeclared_for_apply(schema, &applied) {
                    return Err(ApiError::internal_unreasoned(format!(
                        "failed to create typed patch object ({}/{name}; {}, Kind={}): {why}",
                        namespace.filter(|_| rt.namespaced).unwrap_or_default(),
                        rt.api_version()
                            .split_once('/')
                            .map_or_else(|| format!("/{}", rt.version), |_| rt.api_version()),
                        rt.kind,
                    )));
                }
                let merged = managed::apply(
                    schema,
                    old.as_ref(),
                    &applied,
                    &options.manager,
                    &rt.api_version(),
                    subresource,
                    options.force,
                    &now,
                )
                .map_err(|conflicts| conflict_error(rt, name, &conflicts))?;
                validate::patched(rt, name, &merged)?;
                match old {
                    Some(old) => {
                        let updated = state.finish_write(
                            &self.events,
                            rt,
                            namespace,
                            old,
                            merged,
                            options,
                            Some(()),
                        )?;
                        Ok((updated, false))
                    }
                    None => {
                        drop(state);
                        Ok((self.create_applied(rt, namespace, merged, options)?, true))
                    }
                }
            }
            _ => {
                let options = &WriteOptions {
                    patching: true,
                    ..options.clone()
                };
                let old = old.ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
                let mut patched = old.clone();
                match kind {
                    PatchKind::Merge => json_patch::merge(&mut patched, &patch),
                    PatchKind::Strategic => {
                        crate::patch::strategic_merge(&mut patched, &patch, rt.schema())
                            .map_err(ApiError::bad_request)?
                    }
                    PatchKind::Json => {
                        let operations: json_patch::Patch =
                            serde_json::from_value(patch).map_err(|e| {
                                ApiError::bad_request(format!("invalid JSON patch: {e}"))
                            })?;
                        json_patch::patch(&mut patched, &operations).map_err(|e| {
                            ApiError::invalid(&validate::qualified_kind(rt), name, e.to_string())
                        })?;
                    }
                    PatchKind::Apply => {}
                }
                validate::patched(rt, name, &patched)?;
                // A resourceVersion in the patch is a precondition, as in an update.
                let wanted = string_at(&patched, "/metadata/resourceVersion");
                if !wanted.is_empty() && wanted != string_at(&old, "/metadata/resourceVersion") {
                    return Err(modified(rt, name));
                }
                Ok((
                    state.finish_write(&self.events, rt, namespace, old, patched, options, None)?,
                    false,
                ))
            }
        }
    }

    fn create_applied(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        merged: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        // Keep the ownership apply computed; create() would record an Update.
        let managed_fields = merged.pointer("/metadata/managedFields").cloned();
        let mut created = {
            let mut dry = options.clone();
            dry.dry_run = true;
            self.create(rt, namespace, merged, &dry)?
        };
        if let Some(fields) = managed_fields {
            metadata(&mut created).insert("managedFields".to_owned(), fields);
        }
        if options.dry_run {
            return Ok(created);
        }
        let mut state = self.lock();
        if state.get(rt, namespace, &name_of(&created)).is_some() {
            return Err(ApiError::conflict(
                "the object was created concurrently; retry the apply",
            ));
        }
        let stored = state.commit(&self.events, rt, created, "ADDED");
        Ok(with_version(&stored, rt))
    }
}

fn conflict_error(rt: &ResourceType, name: &str, conflicts: &[managed::Conflict]) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\": {}",
                c.manager,
                managed::display_path(&c.path)
            )
        })
        .collect();
    let mut error = ApiError::conflict(if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            lines.len(),
            lines.join("\n")
        )
    });
    error.details = Some(json!({
        "name": name,
        "group": rt.group,
        "kind": rt.plural,
        "causes": conflicts.iter().map(|c| json!({
            "reason": "FieldManagerConflict",
            "message": format!("conflict with \"{}\"", c.manager),
            "field": managed::display_path(&c.path),
        })).collect::<Vec<_>>(),
    }));
    error
}
