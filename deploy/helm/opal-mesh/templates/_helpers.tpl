{{/* Names and the environment every opal-mesh service shares. */}}
{{- define "opal-mesh.name" -}}{{ .Release.Name }}-opal-mesh{{- end -}}

{{- define "opal-mesh.commonEnv" -}}
- name: OPAL_BROADCAST_URI
  value: {{ .Values.kafka.uri | quote }}
- name: OPAL_BROADCAST_CHANNEL_NAME
  value: {{ .Values.kafka.topic | quote }}
- name: OPAL_MESH_KAFKA_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.saslMechanism | quote }}
- name: OPAL_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: OPAL_LOG_SERIALIZE
  value: "true"
- name: OPAL_SERVER_HOST
  value: "0.0.0.0"
- name: OPAL_MESH_BROADCASTER_URLS
  value: "http://{{ include "opal-mesh.name" . }}-broadcaster:{{ .Values.broadcaster.port }}"
- name: OPAL_MESH_POLICY_WATCHER_URLS
  value: "http://{{ include "opal-mesh.name" . }}-policy-watcher:{{ .Values.policyWatcher.port }}"
{{- if .Values.tracing.otlpEndpoint }}
- name: OTEL_TRACES_EXPORTER
  value: otlp
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.tracing.otlpEndpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .Values.tracing.protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.tracing.sampleRatio | quote }}
{{- end }}
{{- end -}}

{{- define "opal-mesh.kafkaSecret" -}}
{{- if .Values.kafka.credentialsSecret }}
envFrom:
  - secretRef:
      name: {{ .Values.kafka.credentialsSecret }}
{{- end }}
{{- end -}}

{{/* A Deployment and its Service: (dict "root" $ "role" "broadcaster" "replicas" 2 "port" 7010 "env" list) */}}
{{- define "opal-mesh.service" -}}
{{- $name := printf "%s-%s" (include "opal-mesh.name" .root) .role -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
spec:
  replicas: {{ .replicas }}
  selector:
    matchLabels: { app: {{ $name }} }
  template:
    metadata:
      labels: { app: {{ $name }} }
    spec:
      containers:
        - name: {{ .role }}
          image: "{{ .root.Values.image.repository }}:{{ .root.Values.image.tag }}"
          imagePullPolicy: {{ .root.Values.image.pullPolicy }}
          args: [{{ .role | quote }}]
          ports:
            - { name: http, containerPort: {{ .port }} }
          env:
            {{- include "opal-mesh.commonEnv" .root | nindent 12 }}
            - name: OPAL_SERVER_BIND_PORT
              value: {{ .port | quote }}
            - name: POD_IP
              valueFrom: { fieldRef: { fieldPath: status.podIP } }
            - name: OPAL_MESH_ADVERTISED_URL
              value: "http://$(POD_IP):{{ .port }}"
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "opal-mesh.kafkaSecret" .root | nindent 10 }}
          readinessProbe:
            httpGet: { path: /healthcheck, port: http }
          livenessProbe:
            httpGet: { path: /, port: http }
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
spec:
  selector: { app: {{ $name }} }
  ports:
    - { name: http, port: {{ .port }}, targetPort: http }
    {{- with .extraPorts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
