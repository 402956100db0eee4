{{/*
Object names are fixed, not derived from the release: the webhook finds its Secret, Service and
webhook configuration by these names, and they are the upstream chart's, so `helm upgrade` from it
replaces each object in place.
*/}}
{{- define "azwi.serviceName" -}}azure-wi-webhook-webhook-service{{- end }}
{{- define "azwi.secretName" -}}azure-wi-webhook-server-cert{{- end }}
{{- define "azwi.webhookConfigName" -}}azure-wi-webhook-mutating-webhook-configuration{{- end }}
{{- define "azwi.configMapName" -}}azure-wi-webhook-config{{- end }}
{{- define "azwi.deploymentName" -}}azure-wi-webhook-controller-manager{{- end }}
{{- define "azwi.serviceAccountName" -}}azure-wi-webhook-admin{{- end }}
{{- define "azwi.roleName" -}}azure-wi-webhook-manager-role{{- end }}
{{- define "azwi.roleBindingName" -}}azure-wi-webhook-manager-rolebinding{{- end }}
{{- define "azwi.servingCertName" -}}azure-wi-webhook-serving-cert{{- end }}

{{/*
The upstream chart's name, used in its `app` and `chart` labels, which its Deployment selects on.
A selector is immutable, so ours must be the same for an in-place upgrade.
*/}}
{{- define "azwi.name" -}}
{{- default "workload-identity-webhook" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels the Deployment, Service and PodDisruptionBudget select on: the upstream chart's, or for
static manifests the upstream static manifest's.
*/}}
{{- define "azwi.selectorLabels" -}}
{{- if .Values.staticManifests -}}
azure-workload-identity.io/system: "true"
{{- else -}}
app: {{ include "azwi.name" . | quote }}
azure-workload-identity.io/system: "true"
chart: {{ include "azwi.name" . | quote }}
release: {{ .Release.Name | quote }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "azwi.labels" -}}
{{ include "azwi.selectorLabels" . }}
app.kubernetes.io/name: azwi-webhook
app.kubernetes.io/part-of: azure-workload-identity
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- if not .Values.staticManifests }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
{{- end }}

{{/* Labels of the webhook pods: podLabels first, so they cannot override the selected ones. */}}
{{- define "azwi.podLabels" -}}
{{- $selected := include "azwi.selectorLabels" . | fromYaml }}
{{- range $key, $value := .Values.podLabels }}
{{- if and (hasKey $selected $key) (ne (toString $value) (get $selected $key)) }}
{{- fail (printf "podLabels.%s: the Deployment selects on this label (value %q); it cannot be changed" $key (get $selected $key)) }}
{{- end }}
{{- end }}
{{- $labels := merge (dict) $selected (dict "app.kubernetes.io/name" "azwi-webhook" "app.kubernetes.io/part-of" "azure-workload-identity") .Values.podLabels }}
{{- toYaml $labels }}
{{- end }}

{{/* Whether the webhook manages its own certificates (no --disable-cert-rotation). */}}
{{- define "azwi.selfManaged" -}}
{{- if eq .Values.certificates.mode "self-managed" }}true{{ end }}
{{- end }}

{{/*
Whether identity binding is on: the webhook turns it off when both custom-token-endpoint flags are
empty, and refuses to start when exactly one is.
*/}}
{{- define "azwi.identityBinding" -}}
{{- $suffix := .Values.customTokenEndpoint.annotationSuffix }}
{{- $audience := .Values.customTokenEndpoint.audience }}
{{- if and $suffix $audience }}true
{{- else if or $suffix $audience }}
{{- fail "customTokenEndpoint.annotationSuffix and customTokenEndpoint.audience: set both (identity binding on) or neither (off)" }}
{{- end }}
{{- end }}

{{/* --rbac-check; YAML reads an unquoted `off` as false. */}}
{{- define "azwi.rbacCheck" -}}
{{- if eq (toString .Values.rbacCheck) "false" }}off{{ else }}{{ .Values.rbacCheck }}{{ end }}
{{- end }}

{{/* The SubjectAccessReview permission is needed only when the webhook runs the RBAC check. */}}
{{- define "azwi.needsSubjectAccessReview" -}}
{{- if and (include "azwi.identityBinding" .) (ne (include "azwi.rbacCheck" .) "off") }}true{{ end }}
{{- end }}

{{/* The port of a Go-style listen address (`:PORT`, `HOST:PORT`, `[IPv6]:PORT`). */}}
{{- define "azwi.addrPort" -}}
{{- $port := regexReplaceAll "^.*:" . "" }}
{{- if or (not (regexMatch "^[0-9]{1,5}$" $port)) (lt ($port | int) 1) (gt ($port | int) 65535) }}
{{- fail (printf "listen address %q: expected :PORT or HOST:PORT with a port from 1 to 65535" .) }}
{{- end }}
{{- $port | int }}
{{- end }}

{{/* Milliseconds in a duration the schema accepts (`0`, `500ms`, `1m30s`, ...). */}}
{{- define "azwi.durationMillis" -}}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" . -1 }}
{{- $n := regexFind "^[0-9]+" . | int64 }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" .) . }}
{{- $total = add $total (mul $n (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
The grace period the webhook needs after SIGTERM: shutdownDelay + shutdownDrainTimeout + 2 s to
exit (the same rule as `serve --termination-grace-period`), in whole seconds; fails when
terminationGracePeriodSeconds is shorter, since the kubelet would kill the webhook mid-drain.
*/}}
{{- define "azwi.terminationGracePeriodSeconds" -}}
{{- $millis := add (include "azwi.durationMillis" .Values.shutdownDelay | int64) (include "azwi.durationMillis" .Values.shutdownDrainTimeout | int64) 2000 }}
{{- $needed := div (add $millis 999) 1000 }}
{{- $grace := .Values.terminationGracePeriodSeconds | int64 }}
{{- if lt $grace $needed }}
{{- fail (printf "terminationGracePeriodSeconds (%d) is too short for shutdownDelay (%s) + shutdownDrainTimeout (%s) + 2s to exit: set it to at least %d, or shorten the delay or the drain" $grace .Values.shutdownDelay .Values.shutdownDrainTimeout $needed) }}
{{- end }}
{{- $grace }}
{{- end }}

{{/* The webhook image reference; a `sha256:` release is a digest. */}}
{{- define "azwi.image" -}}
{{- $repo := .Values.image.repository }}
{{- if regexMatch "(^|/)oss/azure/workload-identity/webhook$" $repo }}
{{- fail (printf "image.repository %q is the upstream webhook image, which does not accept this chart's flags: use azwi-webhook's image (default %s), or a mirror of it" $repo "ghcr.io/azwi-webhook/azwi-webhook") }}
{{- end }}
{{- if hasPrefix "sha256:" .Values.image.release }}
{{- printf "%s@%s" $repo .Values.image.release }}
{{- else }}
{{- printf "%s:%s" $repo .Values.image.release }}
{{- end }}
{{- end }}

{{/* The mounted client CA file, or nothing when mutual TLS is off. */}}
{{- define "azwi.clientCAFile" -}}
{{- $ca := .Values.clientCA }}
{{- $sources := 0 }}
{{- range (list $ca.configMapName $ca.secretName $ca.file) }}{{ if . }}{{ $sources = add1 $sources }}{{ end }}{{ end }}
{{- if gt $sources 1 }}
{{- fail "clientCA: set at most one of configMapName, secretName and file" }}
{{- end }}
{{- if or $ca.configMapName $ca.secretName }}
{{- printf "/client-ca/%s" $ca.key }}
{{- else if $ca.file }}
{{- $ca.file }}
{{- end }}
{{- end }}
