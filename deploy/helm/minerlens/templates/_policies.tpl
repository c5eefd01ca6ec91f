{{/*
PodDisruptionBudget and HorizontalPodAutoscaler of a Deployment in namespaces.app.
Argument: dict ctx, name (minerlens-<service>), values (the service's values).
*/}}
{{- define "minerlens.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Values.namespaces.app }}
  labels:
    {{- include "minerlens.labels" (dict "ctx" .ctx "name" .name) | nindent 4 }}
spec:
  {{- if hasKey .values.pdb "minAvailable" }}
  minAvailable: {{ .values.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "minerlens.selector" .name | nindent 6 }}
{{- end -}}

{{/*
Scale on CPU. A Kafka partition is consumed by exactly one replica of the consumer group, so replicas
beyond the partition count of the input topic sit idle: raise maxReplicas only together with its partitions.
*/}}
{{- define "minerlens.hpa" -}}
{{- $a := .values.autoscaling -}}
{{- if $a.enabled -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "%s: autoscaling.minReplicas (%v) > autoscaling.maxReplicas (%v)" .name $a.minReplicas $a.maxReplicas) -}}
{{- end -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Values.namespaces.app }}
  labels:
    {{- include "minerlens.labels" (dict "ctx" .ctx "name" .name) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: {{ $a.scaleDownStabilizationWindowSeconds }}
{{- end -}}
{{- end -}}
