{{/* Base name of the chart's objects. */}}
{{- define "redis-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name: the release name when it already contains the chart name (so
`helm install redis-operator ...` gives `redis-operator`, and the Service
`redis-operator-service`, the address the seed documents), else release-chart.
*/}}
{{- define "redis-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "redis-operator.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on the operator's pods; the Service and the Deployment select by these. */}}
{{- define "redis-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "redis-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "redis-operator.labels" -}}
{{ include "redis-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: redis-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "redis-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "redis-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* registry/repository:tag, the registry replaced by global.imageRegistry when set. */}}
{{- define "redis-operator.image" -}}
{{- $img := .Values.redisOperator.image -}}
{{- $registry := .Values.global.imageRegistry | default $img.registry -}}
{{- $tag := $img.tag | default .Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry $img.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
THE OPERATOR'S PERMISSIONS, in one place. Every API call `redis-operator run` makes, and
nothing else (no wildcard, no pods/exec, Secrets read-only):

  group                 resource                    verbs                                   why
  redis.redis           redisclusters               list watch patch                        watch specs; finalizer (JSON patch)
  redis.redis           redisclusters/status        patch                                   phase, conditions, nodes (apply)
  apps                  statefulsets                list watch create patch delete          one per Redis node (apply)
  ""                    pods                        list watch patch delete                 observe nodes; shard label; replace one
  ""                    persistentvolumeclaims      list watch delete deletecollection      drop a removed node's data
  ""                    services                    create patch                            headless <cluster>-nodes (apply)
  policy                poddisruptionbudgets        create patch                            one per cluster (apply)
  ""                    secrets                     get                                     spec.passwordSecret
  events.k8s.io         events                      create patch                            Kubernetes Events
  ""                    nodes                       list (cluster-scoped)                   anti-affinity: count hosts
  coordination.k8s.io   leases                      get create update (own namespace)       leader election

"redis-operator.rules.namespaced" are granted cluster-wide (ClusterRole) when every namespace
is watched, else per watched namespace (Role); nodes always need a ClusterRole; leases a Role
in the release namespace.
*/}}
{{- define "redis-operator.rules.namespaced" -}}
- apiGroups: ["redis.redis"]
  resources: ["redisclusters"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["redis.redis"]
  resources: ["redisclusters/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "watch", "delete", "deletecollection"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{- define "redis-operator.rules.cluster" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list"]
{{- end -}}

{{- define "redis-operator.rules.lease" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end -}}

{{/* The alert rule groups of files/alerts.yaml, with monitoring.alertLabels added to each
alert (an alert's own labels win). */}}
{{- define "redis-operator.alertGroups" -}}
{{- $rules := .Files.Get "files/alerts.yaml" | fromYaml -}}
{{- $extra := .Values.monitoring.alertLabels | default dict -}}
{{- range $g := $rules.groups -}}
{{- range $r := $g.rules -}}
{{- $_ := set $r "labels" (merge (dict) ($r.labels | default dict) $extra) -}}
{{- end -}}
{{- end -}}
{{- toYaml $rules.groups -}}
{{- end -}}

{{/* Names the subcharts find their inputs by (see the subcharts' values.yaml). */}}
{{- define "redis-operator.alertsConfigMap" -}}
{{- printf "%s-redis-operator-alerts" .Release.Name -}}
{{- end -}}
{{- define "redis-operator.dashboardsConfigMap" -}}
{{- printf "%s-redis-operator-dashboards" .Release.Name -}}
{{- end -}}
