{{/* The chart name or nameOverride: the `app` and `chart` labels, which the Deployment selects on. */}}
{{- define "upstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Every object's labels, and the Deployment's, Service's and PDB's selector. */}}
{{- define "upstream.labels" -}}
app: '{{ template "upstream.name" . }}'
azure-workload-identity.io/system: "true"
chart: '{{ template "upstream.name" . }}'
release: '{{ .Release.Name }}'
{{- end }}
