/**
 * What marks a child as this operator's: its labels (and the immutable
 * selector subset), the field manager of its server-side applies, and the
 * controller reference that names its OnnxModel.
 */
import { API_VERSION, GROUP, KIND, type OnnxModel } from '../../crds/onnxmodel-types.js';
import type { V1OwnerReference } from '@kubernetes/client-node';

export const FIELD_MANAGER = 'onnx-operator';
export const MODEL_LABEL = `${GROUP}/model`;
export const CONFIG_HASH_ANNOTATION = `${GROUP}/config-hash`;

/** Labels on every child; the selector subset must never change (Deployment selectors are immutable). */
export function childLabels(model: OnnxModel): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'onnx-inference-server',
    'app.kubernetes.io/instance': model.metadata.name!,
    'app.kubernetes.io/component': 'inference',
    'app.kubernetes.io/managed-by': FIELD_MANAGER,
    [MODEL_LABEL]: model.metadata.name!,
  };
}

export function selectorLabels(model: OnnxModel): Record<string, string> {
  return { [MODEL_LABEL]: model.metadata.name! };
}

export function selectorString(model: OnnxModel): string {
  return Object.entries(selectorLabels(model))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Makes the OnnxModel the controller of a child: deleting the model garbage-collects it. */
export function ownerReference(model: OnnxModel): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: model.metadata.name!,
    uid: model.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The OnnxModel a child belongs to, from its controller reference. */
export function ownerKey(obj: {
  metadata?: { namespace?: string; ownerReferences?: V1OwnerReference[] };
}): string | undefined {
  const ref = obj.metadata?.ownerReferences?.find(
    (r) => r.controller && r.kind === KIND && r.apiVersion.startsWith(`${GROUP}/`),
  );
  return ref && obj.metadata?.namespace ? `${obj.metadata.namespace}/${ref.name}` : undefined;
}
