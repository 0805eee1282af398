//! The kinds the sandbox serves: built-ins plus whatever CustomResourceDefinitions add.

use serde_json::{Value, json};

/// One served resource (one group/version/plural).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group (`""` for the core group).
    pub group: String,
    /// Version (`v1`, …).
    pub version: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// Plural path segment (`deployments`).
    pub plural: String,
    /// Singular name (`deployment`).
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl users type (`deploy`).
    pub short_names: Vec<String>,
    /// Whether a `status` subresource is served.
    pub status: bool,
    /// Whether this type came from a CRD.
    pub custom: bool,
    /// Whether the type is only ever created and answered, never stored
    /// (the self-review kinds of `authorization.k8s.io` and `authentication.k8s.io`).
    pub create_only: bool,
    /// A CRD version's `additionalPrinterColumns` (empty: Name and Age).
    pub printer_columns: Vec<PrinterColumn>,
    /// A CRD version's schema (built-in kinds' schemas are in
    /// [`crate::schema::builtin`]).
    pub schema: Option<crate::schema::CrdSchema>,
}

/// One of a CRD's `additionalPrinterColumns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    /// OpenAPI format, passed through.
    pub format: String,
    /// Passed through to the Table.
    pub description: String,
    /// 0 shows in `kubectl get`, more only with `-o wide`.
    pub priority: i64,
    /// Where the value is.
    pub path: crate::jsonpath::JsonPath,
}

/// The printer columns of a CRD version; one whose JSONPath this sandbox
/// cannot read is an error, as the real server refuses the CRD.
fn printer_columns(version: &Value) -> Result<Vec<PrinterColumn>, String> {
    let Some(columns) = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    columns
        .iter()
        .map(|column| {
            let text = |key: &str| {
                column
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let json_path = text("jsonPath");
            let path = crate::jsonpath::JsonPath::parse(&json_path).ok_or_else(|| {
                format!("additionalPrinterColumns: unsupported jsonPath {json_path:?}")
            })?;
            Ok(PrinterColumn {
                name: text("name"),
                kind: text("type"),
                format: text("format"),
                description: text("description"),
                priority: column.get("priority").and_then(Value::as_i64).unwrap_or(0),
                path,
            })
        })
        .collect()
}

/// A served CRD version's `schema.openAPIV3Schema`: required (as in
/// apiextensions.k8s.io/v1) and compiled.
fn version_schema(name: &str, version: &Value) -> Result<crate::schema::CrdSchema, String> {
    let schema = version.pointer("/schema/openAPIV3Schema").ok_or_else(|| {
        format!(
            "spec.versions[{name}].schema.openAPIV3Schema: Required value: schemas are required"
        )
    })?;
    crate::schema::CrdSchema::compile(schema)
        .map_err(|e| format!("spec.versions[{name}].schema.{e}"))
}

impl ResourceType {
    /// The schema objects of this type are held to ([`Node::ANY`] for none).
    ///
    /// [`Node::ANY`]: crate::schema::Node::ANY
    pub fn schema(&self) -> crate::schema::Node<'_> {
        match &self.schema {
            Some(schema) => schema.root(),
            None if self.custom => crate::schema::Node::ANY,
            None => crate::schema::builtin().kind(&self.group, &self.version, &self.kind),
        }
    }

    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the `scale` subresource is served.
    pub fn scalable(&self) -> bool {
        self.group == "apps"
            && matches!(
                self.kind.as_str(),
                "Deployment" | "StatefulSet" | "ReplicaSet"
            )
    }

    /// Storage key: objects are shared between versions of a group and kind.
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `deployments.apps`, as Kubernetes names resources in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The `APIResource` entries of this type for discovery.
    pub fn discovery(&self) -> Vec<Value> {
        if self.create_only {
            return vec![json!({
                "name": self.plural,
                "singularName": self.singular,
                "namespaced": false,
                "kind": self.kind,
                "verbs": ["create"],
                "storageVersionHash": "",
            })];
        }
        let verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "shortNames": self.short_names,
            "storageVersionHash": "",
        })];
        if self.scalable() {
            out.push(json!({
                "name": format!("{}/scale", self.plural),
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if self.status {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
) -> ResourceType {
    ResourceType {
        group: group.to_owned(),
        version: version.to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
        singular: kind.to_ascii_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| (*s).to_owned()).collect(),
        status,
        custom: false,
        create_only: false,
        printer_columns: Vec::new(),
        schema: None,
    }
}

/// A self-review kind: cluster-scoped, create only, answered and never stored.
fn review(group: &str, kind: &str, plural: &str) -> ResourceType {
    ResourceType {
        create_only: true,
        ..builtin(group, "v1", kind, plural, false, &[], false)
    }
}

/// Every built-in kind the sandbox serves.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        builtin("", "v1", "Namespace", "namespaces", false, &["ns"], true),
        builtin("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
        builtin("", "v1", "Secret", "secrets", true, &[], false),
        builtin("", "v1", "Service", "services", true, &["svc"], true),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
        ),
        builtin("", "v1", "Pod", "pods", true, &["po"], true),
        builtin(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            true,
        ),
        builtin(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            false,
            &["pv"],
            true,
        ),
        builtin("", "v1", "Event", "events", true, &["ev"], false),
        builtin("", "v1", "Endpoints", "endpoints", true, &["ep"], false),
        builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            true,
        ),
        builtin(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            &["sts"],
            true,
        ),
        builtin("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], true),
        builtin(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            &["rs"],
            true,
        ),
        builtin("batch", "v1", "Job", "jobs", true, &[], true),
        builtin("batch", "v1", "CronJob", "cronjobs", true, &["cj"], true),
        builtin(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            &["ing"],
            true,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            &["netpol"],
            false,
        ),
        builtin(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            &["hpa"],
            true,
        ),
        builtin(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            &["hpa"],
            true,
        ),
        builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            true,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
        ),
        review(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
        ),
        review(
            "authorization.k8s.io",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
        ),
        review(
            "authentication.k8s.io",
            "SelfSubjectReview",
            "selfsubjectreviews",
        ),
    ]
}

/// The resource types a CustomResourceDefinition defines (one per served version).
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("spec.names.kind is required")?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .ok_or("spec.names.plural is required")?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map_or_else(|| kind.to_ascii_lowercase(), str::to_owned);
    let short_names: Vec<String> = names
        .get("shortNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope must be Namespaced or Cluster".to_owned()),
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or("spec.versions must list at least one version")?;
    let mut out = Vec::new();
    for version in versions {
        let name = version
            .get("name")
            .and_then(Value::as_str)
            .ok_or("spec.versions[].name is required")?;
        if !version
            .get("served")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            continue;
        }
        out.push(ResourceType {
            group: group.to_owned(),
            version: name.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: singular.clone(),
            namespaced,
            short_names: short_names.clone(),
            status: version.pointer("/subresources/status").is_some(),
            custom: true,
            create_only: false,
            printer_columns: printer_columns(version)?,
            schema: Some(version_schema(name, version)?),
        });
    }
    Ok(out)
}
