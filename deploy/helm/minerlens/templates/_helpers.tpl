{{/*
Helpers of the minerlens chart. Object names are fixed (minerlens-<service>) and so are the selectors
(app.kubernetes.io/name only): the same objects as the former Kustomize base, so one release per cluster.
*/}}

{{/* Labels on every object's metadata. */}}
{{- define "minerlens.commonLabels" -}}
app.kubernetes.io/part-of: minerlens
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Metadata labels of a component's object. Argument: dict ctx, name, [component]. */}}
{{- define "minerlens.labels" -}}
app.kubernetes.io/name: {{ .name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{ include "minerlens.commonLabels" .ctx }}
{{- end -}}

{{/* Pod template labels. Argument: dict ctx, name, component, values (the service's values). */}}
{{- define "minerlens.podLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: minerlens
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
minerlens.io/kafka-client: "true"
{{- with .values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector of a component: the name label only (selectors are immutable: kept as they were). */}}
{{- define "minerlens.selector" -}}
app.kubernetes.io/name: {{ . }}
{{- end -}}

{{/* Image reference: [registry/]repository:tag[@digest]. Argument: dict ctx, image. */}}
{{- define "minerlens.image" -}}
{{- $g := .ctx.Values.global -}}
{{- $registry := .image.registry | default $g.imageRegistry -}}
{{- $tag := .image.tag | default $g.imageTag | default .ctx.Chart.AppVersion -}}
{{- $ref := printf "%s:%s" .image.repository $tag -}}
{{- if $registry -}}
{{- $ref = printf "%s/%s" (trimSuffix "/" $registry) $ref -}}
{{- end -}}
{{- if .image.digest -}}
{{- $ref = printf "%s@%s" $ref .image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The container's image and pull policy. Argument: dict ctx, image. */}}
{{- define "minerlens.containerImage" -}}
image: {{ include "minerlens.image" . | quote }}
imagePullPolicy: {{ .image.pullPolicy }}
{{- end -}}

{{/* Scheduling and pull secrets of a pod spec. Argument: dict ctx, name, values. */}}
{{- define "minerlens.podScheduling" -}}
{{- with .ctx.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range .values.topologySpreadConstraints }}
  {{- $c := . }}
  {{- if not (hasKey $c "labelSelector") }}
  {{- $c = merge (dict "labelSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" $.name))) $c }}
  {{- end }}
  - {{ toYaml $c | nindent 4 | trim }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Pod security context of the services in the restricted namespace (uid 10001). */}}
{{- define "minerlens.restrictedPodSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* Container security context of the services in the restricted namespace. */}}
{{- define "minerlens.restrictedSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{/* Pod annotations: Prometheus discovery, config checksum, the user's. Argument: dict port, checksum, values. */}}
{{- define "minerlens.podAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
{{- with .checksum }}
checksum/config: {{ . }}
{{- end }}
{{- with .values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* envFrom: the common ConfigMap, the service's (if any), the user's. Argument: dict configMap, values. */}}
{{- define "minerlens.envFrom" -}}
envFrom:
  - configMapRef:
      name: minerlens-common
  {{- with .configMap }}
  - configMapRef:
      name: {{ . }}
  {{- end }}
  {{- with .values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Where model artifacts live: the user's claim or the chart's. */}}
{{- define "minerlens.modelsClaim" -}}
{{- .Values.models.existingClaim | default "minerlens-models" -}}
{{- end -}}

{{/* Path of the model signing public key in the pods (when models.publicKey.configMap is set). */}}
{{- define "minerlens.modelPubkeyPath" -}}
/etc/minerlens/models/models.pub
{{- end -}}

{{/* env entry and volume(Mount) of the model signing key. Argument: the root context. */}}
{{- define "minerlens.modelPubkeyEnv" -}}
{{- if .Values.models.publicKey.configMap }}
- name: MINERLENS_MODEL_PUBKEY
  value: {{ include "minerlens.modelPubkeyPath" . }}
{{- end }}
{{- end -}}
{{- define "minerlens.modelPubkeyMount" -}}
{{- if .Values.models.publicKey.configMap }}
- name: model-pubkey
  mountPath: /etc/minerlens/models
  readOnly: true
{{- end }}
{{- end -}}
{{- define "minerlens.modelPubkeyVolume" -}}
{{- if .Values.models.publicKey.configMap }}
- name: model-pubkey
  configMap:
    name: {{ .Values.models.publicKey.configMap }}
    items:
      - key: {{ .Values.models.publicKey.key }}
        path: models.pub
{{- end }}
{{- end -}}

{{/* ---- configuration (the ConfigMaps' data) ------------------------------------------------------ */}}

{{/*
Settings the chart derives from other values (ports, mounted paths, service addresses): they win, and a
service's config may not set them. Each returns a YAML map.
*/}}
{{- define "minerlens.managed.common" -}}
MINERLENS_CLUSTER: {{ .Values.cluster | quote }}
MINERLENS_KAFKA_BOOTSTRAP: {{ .Values.kafka.bootstrapServers | quote }}
MINERLENS_KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
{{- end -}}
{{- define "minerlens.managed.collector" -}}
MINERLENS_COLLECTOR_PROC_ROOT: /host/proc
MINERLENS_COLLECTOR_CGROUP_ROOT: /host/sys/fs/cgroup
MINERLENS_COLLECTOR_HTTP_HOST: 0.0.0.0
MINERLENS_COLLECTOR_HTTP_PORT: {{ .Values.collector.port | quote }}
{{- end -}}
{{- define "minerlens.managed.featurizer" -}}
MINERLENS_FEATURIZER_DATA_DIR: /var/lib/minerlens/featurizer
MINERLENS_FEATURIZER_WEB_BIND: 0.0.0.0
MINERLENS_FEATURIZER_WEB_PORT: {{ .Values.featurizer.port | quote }}
{{- end -}}
{{- define "minerlens.managed.scorer" -}}
MINERLENS_SCORER_MODELS_DIR: /models
MINERLENS_SCORER_HTTP_HOST: 0.0.0.0
MINERLENS_SCORER_HTTP_PORT: {{ .Values.scorer.port | quote }}
MINERLENS_SCORER_EXPLAIN_BASE_URL: {{ printf "http://minerlens-explainer.%s.svc:%v" .Values.namespaces.app .Values.explainer.port | quote }}
{{- end -}}
{{- define "minerlens.managed.explainer" -}}
MINERLENS_EXPLAINER_HOST: 0.0.0.0
MINERLENS_EXPLAINER_PORT: {{ .Values.explainer.port | quote }}
MINERLENS_EXPLAINER_TOKENS_FILE: /etc/minerlens/explainer/tokens
{{- if .Values.explainer.metricsPublic }}
MINERLENS_EXPLAINER_METRICS_PUBLIC: "true"
{{- end }}
NUMBA_CACHE_DIR: /tmp/numba
MPLCONFIGDIR: /tmp/matplotlib
{{- end -}}
{{- define "minerlens.managed.siem" -}}
MINERLENS_SIEM_OUTPUT: {{ .Values.siem.output | quote }}
MINERLENS_SIEM_METRICS_HOST: 0.0.0.0
MINERLENS_SIEM_METRICS_PORT: {{ .Values.siem.port | quote }}
{{- end -}}
{{- define "minerlens.managed.responder" -}}
MINERLENS_RESPONDER_POLICY_FILE: /etc/minerlens/responder/policy.yaml
MINERLENS_RESPONDER_HTTP_HOST: 0.0.0.0
MINERLENS_RESPONDER_HTTP_PORT: {{ .Values.responder.port | quote }}
MINERLENS_RESPONDER_OWN_NAMESPACE: (the pod's namespace)
{{- end -}}

{{/*
The data of a ConfigMap: managed settings plus the user's (string values, sorted keys). Fails when the
user sets a managed one. Argument: dict ctx, managed (template name), user (map), where (values path).
*/}}
{{- define "minerlens.configData" -}}
{{- $managed := include .managed .ctx | fromYaml -}}
{{- $data := dict -}}
{{- range $k, $v := .user -}}
{{- if hasKey $managed $k -}}
{{- fail (printf "%s.%s is set by the chart (from ports, mounts and addresses in the values): remove it" $.where $k) -}}
{{- end -}}
{{- $_ := set $data $k (toString $v) -}}
{{- end -}}
{{- range $k, $v := $managed -}}
{{- $_ := set $data $k (toString $v) -}}
{{- end -}}
{{- range $k, $v := $data }}
{{ $k }}: {{ $v | quote }}
{{- end -}}
{{- end -}}

{{- define "minerlens.config.common" -}}
{{- include "minerlens.configData" (dict "ctx" . "managed" "minerlens.managed.common" "user" .Values.commonConfig "where" "commonConfig") -}}
{{- end -}}
{{- define "minerlens.config.service" -}}
{{- $values := index .ctx.Values .service -}}
{{- include "minerlens.configData" (dict "ctx" .ctx "managed" (printf "minerlens.managed.%s" .service) "user" $values.config "where" (printf "%s.config" .service)) -}}
{{- end -}}

{{/* Checksum of the configuration a service's pods load: they roll when it changes. Argument: dict ctx, service. */}}
{{- define "minerlens.configChecksum" -}}
{{- $text := print (include "minerlens.config.common" .ctx) (include "minerlens.config.service" .) -}}
{{- if eq .service "responder" -}}
{{- $text = print $text (include "minerlens.responderPolicy" .ctx) -}}
{{- end -}}
{{- $text | sha256sum -}}
{{- end -}}

{{/* The responder's policy file. */}}
{{- define "minerlens.responderPolicy" -}}
{{- .Values.responder.policy | default (.Files.Get "files/responder-policy.yaml") -}}
{{- end -}}

{{/* Name of the Secret with the explainer's tokens. */}}
{{- define "minerlens.explainerTokensSecret" -}}
{{- .Values.explainer.tokens.existingSecret | default "minerlens-explainer-tokens" -}}
{{- end -}}
