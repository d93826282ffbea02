{{- define "cpu-engine.modelClaim" -}}
{{- .Values.model.pvc.existingClaim | default (printf "%s-model" (include "common.fullname" .)) -}}
{{- end -}}
