{{/*
The pod template of both Deployments: the main one (role all, or web beside a worker) and, with
worker.enabled, the worker's (role worker). Called with (dict "root" $ "worker" BOOL).
*/}}
{{- define "puerta.pod" }}
{{- $root := .root }}
{{- $worker := .worker }}
  template:
    metadata:
      labels:
        {{- include "puerta.podSelectorLabels" $ | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or (not $root.Values.existingPolicyConfigMap) $root.Values.podAnnotations }}
      annotations:
        {{- if not $root.Values.existingPolicyConfigMap }}
        # Puerta reads the policy at start: a changed policy rolls the pods.
        checksum/policy: {{ $root.Values.policy | sha256sum }}
        {{- end }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "puerta.serviceAccountName" $root }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: puerta
          image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag | default $root.Chart.AppVersion }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            - serve
            - --host
            - 0.0.0.0
            - --port
            - {{ $root.Values.containerPort | quote }}
          ports:
            - name: http
              containerPort: {{ $root.Values.containerPort }}
              protocol: TCP
          env:
            - name: PUERTA_CONFIG
              value: /etc/puerta/policy.yaml
            - name: PUERTA_LOG_FORMAT
              value: json
            - name: PUERTA_LOG_LEVEL
              value: {{ $root.Values.logLevel | quote }}
            - name: PUERTA_MIGRATE_ON_START
              value: {{ $root.Values.database.migrateOnStart | quote }}
            {{- if $root.Values.worker.enabled }}
            - name: PUERTA_ROLE
              value: {{ ternary "worker" "web" $worker }}
            {{- end }}
            {{- if $root.Values.database.existingSecret }}
            - name: PUERTA_DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.database.existingSecret }}
                  key: {{ $root.Values.database.urlKey }}
            {{- end }}
            {{- if $root.Values.tokens.existingSecret }}
            {{- range $name, $key := $root.Values.tokens.env }}
            {{- if $key }}
            - name: {{ $name }}
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.tokens.existingSecret }}
                  key: {{ $key }}
            {{- end }}
            {{- end }}
            {{- end }}
            {{- $secretEnv := $root.Values.extraSecretEnv }}
            {{- if $worker }}
            {{- $secretEnv = concat $secretEnv $root.Values.worker.extraSecretEnv }}
            {{- end }}
            {{- range $secretEnv }}
            - name: {{ .name }}
              valueFrom:
                secretKeyRef:
                  name: {{ .secretName }}
                  key: {{ .key }}
                  {{- if .optional }}
                  optional: true
                  {{- end }}
            {{- end }}
            {{- with $root.Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
            failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
            timeoutSeconds: {{ $root.Values.probes.startup.timeoutSeconds }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
            failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
            timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
            failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
            timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
          {{- if and (not $worker) (gt (int $root.Values.preStopSleepSeconds) 0) }}
          lifecycle:
            preStop:
              # The Service stops routing to a terminating pod only once the endpoint change
              # reaches every node; until then new calls still arrive and are answered.
              exec:
                command: ["sleep", {{ $root.Values.preStopSleepSeconds | quote }}]
          {{- end }}
          resources:
            {{- toYaml (ternary $root.Values.worker.resources $root.Values.resources $worker) | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: policy
              mountPath: /etc/puerta
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if not $root.Values.database.existingSecret }}
            - name: data
              mountPath: /var/lib/puerta
            {{- end }}
            {{- with $root.Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: policy
          configMap:
            name: {{ include "puerta.policyConfigMap" $root }}
            items:
              - key: policy.yaml
                path: policy.yaml
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- if not $root.Values.database.existingSecret }}
        - name: data
          {{- if $root.Values.sqlite.existingClaim }}
          persistentVolumeClaim:
            claimName: {{ $root.Values.sqlite.existingClaim }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- end }}
        {{- with $root.Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if $root.Values.affinity }}
      affinity:
        {{- toYaml $root.Values.affinity | nindent 8 }}
      {{- else }}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- include "puerta.podSelectorLabels" $ | nindent 20 }}
      {{- end }}
      {{- with $root.Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
