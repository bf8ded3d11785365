// Validates rendered Kubernetes manifests (the output of `kubectl kustomize`) offline.
//
//   node validate.mjs rendered.yaml [more.yaml ...]
//
// Three layers, each a list of findings (exit 1 if any):
//   1. schema: every object against the Kubernetes OpenAPI schema of its apiVersion/kind
//      (kubernetes-models) or the Prometheus Operator CRD schema (ServiceMonitor);
//   2. references: Service, PDB, HPA, NetworkPolicy and ServiceMonitor selectors and targets
//      point at objects and ports that exist; every ConfigMap/Secret a pod mounts or reads is
//      either rendered here or listed as provided from outside (--external-secret NAME);
//   3. policy: what docs/deployment.md promises of every workload (non-root, read-only root
//      filesystem, no privilege escalation, probes on the admin port, requests and a memory
//      limit, topology spread).
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const MODELS = {
  "v1/ConfigMap": ["kubernetes-models/v1", "ConfigMap"],
  "v1/Secret": ["kubernetes-models/v1", "Secret"],
  "v1/Service": ["kubernetes-models/v1", "Service"],
  "v1/ServiceAccount": ["kubernetes-models/v1", "ServiceAccount"],
  "apps/v1/Deployment": ["kubernetes-models/apps/v1", "Deployment"],
  "apps/v1/StatefulSet": ["kubernetes-models/apps/v1", "StatefulSet"],
  "autoscaling/v2/HorizontalPodAutoscaler": ["kubernetes-models/autoscaling/v2", "HorizontalPodAutoscaler"],
  "policy/v1/PodDisruptionBudget": ["kubernetes-models/policy/v1", "PodDisruptionBudget"],
  "networking.k8s.io/v1/NetworkPolicy": ["kubernetes-models/networking.k8s.io/v1", "NetworkPolicy"],
  "monitoring.coreos.com/v1/ServiceMonitor": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1", "ServiceMonitor"],
  "monitoring.coreos.com/v1/PrometheusRule": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1", "PrometheusRule"],
};

function parseArgs(argv) {
  const files = [];
  const external = new Set();
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--external-secret") external.add(argv[++i]);
    else files.push(argv[i]);
  }
  return { files, external };
}

function loadObjects(files) {
  const objects = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
      const obj = doc.toJS();
      if (obj !== null && obj !== undefined) objects.push({ file, obj });
    }
  }
  return objects;
}

const nameOf = (o) => `${o.kind}/${o.metadata?.name}`;

async function checkSchema(objects, findings) {
  for (const { obj } of objects) {
    const key = `${obj.apiVersion}/${obj.kind}`;
    const model = MODELS[key];
    if (!model) {
      findings.push(`${nameOf(obj)}: no schema known for ${key}`);
      continue;
    }
    const mod = await import(model[0]);
    try {
      new mod[model[1]](obj).validate();
    } catch (e) {
      findings.push(`${nameOf(obj)}: schema: ${e.message}`);
    }
  }
}

function matches(selector, labels) {
  if (!selector) return false;
  const wanted = selector.matchLabels ?? selector;
  for (const [k, v] of Object.entries(wanted)) if (labels?.[k] !== v) return false;
  for (const expr of selector.matchExpressions ?? []) {
    const has = labels && expr.key in labels;
    const value = labels?.[expr.key];
    if (expr.operator === "In" && !(has && expr.values.includes(value))) return false;
    if (expr.operator === "NotIn" && has && expr.values.includes(value)) return false;
    if (expr.operator === "Exists" && !has) return false;
    if (expr.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

function checkReferences(objects, external, findings) {
  const all = objects.map((o) => o.obj);
  const byKind = (kind) => all.filter((o) => o.kind === kind);
  const workloads = [...byKind("Deployment"), ...byKind("StatefulSet")];
  const podLabels = workloads.map((w) => ({ w, labels: w.spec.template.metadata?.labels ?? {} }));
  const containerPorts = (w) =>
    w.spec.template.spec.containers.flatMap((c) => c.ports ?? []);
  const configMaps = new Set(byKind("ConfigMap").map((o) => o.metadata.name));
  const secrets = new Set([...byKind("Secret").map((o) => o.metadata.name), ...external]);

  for (const w of workloads) {
    if (!matches(w.spec.selector, w.spec.template.metadata?.labels)) {
      findings.push(`${nameOf(w)}: selector does not match its own pod template labels`);
    }
    const spec = w.spec.template.spec;
    for (const v of spec.volumes ?? []) {
      if (v.configMap && !configMaps.has(v.configMap.name) && !v.configMap.optional) {
        findings.push(`${nameOf(w)}: volume ${v.name} mounts missing ConfigMap ${v.configMap.name}`);
      }
      if (v.secret && !secrets.has(v.secret.secretName) && !v.secret.optional) {
        findings.push(`${nameOf(w)}: volume ${v.name} mounts unknown Secret ${v.secret.secretName}`);
      }
    }
    for (const c of spec.containers) {
      const volumeNames = new Set((spec.volumes ?? []).map((v) => v.name));
      for (const m of c.volumeMounts ?? []) {
        if (!volumeNames.has(m.name)) findings.push(`${nameOf(w)}: mount ${m.name} has no volume`);
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref && !secrets.has(ref.name)) {
          findings.push(`${nameOf(w)}: env ${e.name} reads unknown Secret ${ref.name}`);
        }
        const cm = e.valueFrom?.configMapKeyRef;
        if (cm && !configMaps.has(cm.name)) {
          findings.push(`${nameOf(w)}: env ${e.name} reads missing ConfigMap ${cm.name}`);
        }
      }
    }
  }

  for (const s of byKind("Service")) {
    const targets = podLabels.filter((p) => matches(s.spec.selector, p.labels));
    if (targets.length === 0) {
      findings.push(`${nameOf(s)}: selector matches no workload`);
      continue;
    }
    for (const port of s.spec.ports ?? []) {
      const target = port.targetPort ?? port.port;
      for (const { w } of targets) {
        const ok = containerPorts(w).some((cp) =>
          typeof target === "string" ? cp.name === target : cp.containerPort === target);
        if (!ok) findings.push(`${nameOf(s)}: port ${port.name ?? port.port} targets ${target}, which ${nameOf(w)} does not expose`);
      }
    }
  }

  for (const pdb of byKind("PodDisruptionBudget")) {
    if (!podLabels.some((p) => matches(pdb.spec.selector, p.labels))) {
      findings.push(`${nameOf(pdb)}: selector matches no workload`);
    }
  }

  for (const hpa of byKind("HorizontalPodAutoscaler")) {
    const ref = hpa.spec.scaleTargetRef;
    const target = workloads.find((w) => w.kind === ref.kind && w.metadata.name === ref.name);
    if (!target) {
      findings.push(`${nameOf(hpa)}: scales ${ref.kind}/${ref.name}, which is not rendered`);
    } else {
      const resources = (hpa.spec.metrics ?? []).filter((m) => m.type === "Resource");
      for (const m of resources) {
        const missing = target.spec.template.spec.containers.filter(
          (c) => !c.resources?.requests?.[m.resource.name]);
        if (missing.length > 0) {
          findings.push(`${nameOf(hpa)}: scales on ${m.resource.name} but ${nameOf(target)} requests none`);
        }
      }
    }
    if (hpa.spec.minReplicas > hpa.spec.maxReplicas) {
      findings.push(`${nameOf(hpa)}: minReplicas above maxReplicas`);
    }
  }

  for (const sm of byKind("ServiceMonitor")) {
    const services = byKind("Service").filter((s) => matches(sm.spec.selector, s.metadata.labels));
    if (services.length === 0) {
      findings.push(`${nameOf(sm)}: selects no Service`);
      continue;
    }
    for (const ep of sm.spec.endpoints ?? []) {
      if (!services.some((s) => (s.spec.ports ?? []).some((p) => p.name === ep.port))) {
        findings.push(`${nameOf(sm)}: endpoint port ${ep.port} is on none of the selected Services`);
      }
    }
  }

  for (const np of byKind("NetworkPolicy")) {
    const selector = np.spec.podSelector;
    const selectsOwn = podLabels.some((p) => matches(selector, p.labels));
    // The Redis policy selects pods of the Bitnami chart, rendered outside this tree.
    const selectsRedis = selector?.matchLabels?.["app.kubernetes.io/name"] === "redis";
    if (!selectsOwn && !selectsRedis) findings.push(`${nameOf(np)}: selects no pod`);
    for (const rule of np.spec.ingress ?? []) {
      for (const peer of rule.from ?? []) {
        if (peer.podSelector && !peer.namespaceSelector &&
            !podLabels.some((p) => matches(peer.podSelector, p.labels))) {
          findings.push(`${nameOf(np)}: an ingress peer selects no pod of this deployment`);
        }
      }
    }
  }
}

function checkPolicy(objects, findings) {
  for (const { obj: w } of objects) {
    if (w.kind !== "Deployment") continue;
    const spec = w.spec.template.spec;
    const podSec = spec.securityContext ?? {};
    if (podSec.runAsNonRoot !== true) findings.push(`${nameOf(w)}: pod is not runAsNonRoot`);
    if (!spec.topologySpreadConstraints?.length) findings.push(`${nameOf(w)}: no topology spread`);
    for (const c of spec.containers) {
      const where = `${nameOf(w)} container ${c.name}`;
      const sec = c.securityContext ?? {};
      if (sec.readOnlyRootFilesystem !== true) findings.push(`${where}: root filesystem is writable`);
      if (sec.allowPrivilegeEscalation !== false) findings.push(`${where}: privilege escalation allowed`);
      if (!sec.capabilities?.drop?.includes("ALL")) findings.push(`${where}: capabilities not dropped`);
      for (const probe of ["readinessProbe", "livenessProbe"]) {
        if (!c[probe]) findings.push(`${where}: no ${probe}`);
      }
      if (c.livenessProbe?.httpGet?.path !== "/livez") findings.push(`${where}: liveness is not /livez`);
      if (c.readinessProbe?.httpGet?.path !== "/readyz") findings.push(`${where}: readiness is not /readyz`);
      if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory) {
        findings.push(`${where}: no cpu/memory requests`);
      }
      if (!c.resources?.limits?.memory) findings.push(`${where}: no memory limit`);
      if (/:latest$|^[^:]+$/.test(c.image) && w.metadata.namespace === "xmpp") {
        findings.push(`${where}: production image ${c.image} is not pinned`);
      }
    }
  }
}

async function main() {
  const { files, external } = parseArgs(process.argv.slice(2));
  if (files.length === 0) {
    console.error("usage: node validate.mjs [--external-secret NAME]... rendered.yaml...");
    process.exit(2);
  }
  const objects = loadObjects(files);
  if (objects.length === 0) {
    console.error("no objects found");
    process.exit(1);
  }
  const findings = [];
  await checkSchema(objects, findings);
  checkReferences(objects, external, findings);
  checkPolicy(objects, findings);
  for (const f of findings) console.log(`FAIL ${f}`);
  const kinds = {};
  for (const { obj } of objects) kinds[obj.kind] = (kinds[obj.kind] ?? 0) + 1;
  console.log(`${files.join(" ")}: ${objects.length} objects (${Object.entries(kinds)
    .map(([k, n]) => `${n} ${k}`).join(", ")}), ${findings.length} findings`);
  process.exit(findings.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
