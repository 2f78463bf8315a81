/**
 * How an image becomes the model's input tensor, for everything the ONNX file
 * itself cannot tell us. This type is the contract between the operator (which
 * writes it into the pod's environment from `OnnxModel.spec.preprocessing`) and
 * the inference server (which reads it back), so both sides import it from here.
 */

export const RESIZE_MODES = ['stretch', 'center-crop', 'letterbox'] as const;
export type ResizeMode = (typeof RESIZE_MODES)[number];

export const CHANNEL_ORDERS = ['RGB', 'BGR'] as const;
export type ChannelOrder = (typeof CHANNEL_ORDERS)[number];

export const LAYOUTS = ['NCHW', 'NHWC'] as const;
export type Layout = (typeof LAYOUTS)[number];

/**
 * `auto`: ImageNet mean/std for float NCHW models (PyTorch convention), raw 0–255 otherwise (Keras/TF convention).
 */
export const NORMALIZATIONS = ['auto', 'imagenet', 'none', 'custom'] as const;
export type Normalization = (typeof NORMALIZATIONS)[number];

export const SOFTMAX_MODES = ['auto', 'always', 'never'] as const;
export type SoftmaxMode = (typeof SOFTMAX_MODES)[number];

export type Triple = [number, number, number];

export interface PreprocessingOptions {
  /** stretch: ignore aspect ratio; center-crop: cover then crop the middle; letterbox: fit and pad. */
  resizeMode: ResizeMode;
  channelOrder: ChannelOrder;
  /** Overrides the layout guessed from the input shape (only needed when the shape is ambiguous). */
  layout?: Layout;
  normalization: Normalization;
  /** With normalization `custom`: value = (pixel * scale - mean[c]) / std[c]. */
  scale: number;
  mean: Triple;
  std: Triple;
  /** Pad colour for letterbox and the background alpha is flattened onto (0–255 RGB). */
  padColor: Triple;
  softmax: SoftmaxMode;
}

export const IMAGENET_MEAN: Triple = [0.485, 0.456, 0.406];
export const IMAGENET_STD: Triple = [0.229, 0.224, 0.225];

export const DEFAULT_PREPROCESSING: Readonly<PreprocessingOptions> = Object.freeze<PreprocessingOptions>({
  resizeMode: 'center-crop',
  channelOrder: 'RGB',
  normalization: 'auto',
  scale: 1 / 255,
  mean: [0, 0, 0],
  std: [1, 1, 1],
  padColor: [0, 0, 0],
  softmax: 'auto',
});

/** The environment variable each option travels in, from operator to server. */
export const PREPROCESSING_ENV = {
  resizeMode: 'RESIZE_MODE',
  channelOrder: 'CHANNEL_ORDER',
  layout: 'INPUT_LAYOUT',
  normalization: 'NORMALIZATION',
  scale: 'PIXEL_SCALE',
  mean: 'PIXEL_MEAN',
  std: 'PIXEL_STD',
  padColor: 'PAD_COLOR',
  softmax: 'SOFTMAX',
} as const satisfies Record<keyof PreprocessingOptions, string>;

/** Each option's default and meaning as the README's configuration table shows them (scripts/config-docs.ts). */
export const PREPROCESSING_DOCS: Record<keyof PreprocessingOptions, { shownDefault: string; doc: string }> = {
  layout: { shownDefault: 'from the input shape', doc: '`NCHW` or `NHWC`, only when the shape is ambiguous' },
  resizeMode: {
    shownDefault: '`center-crop`',
    doc: '`stretch` (ignore aspect), `center-crop` (cover, crop the middle), `letterbox` (fit, pad)',
  },
  channelOrder: { shownDefault: '`RGB`', doc: '`RGB` or `BGR`' },
  normalization: {
    shownDefault: '`auto`',
    doc:
      '`auto`: float NCHW models get ImageNet mean/std on 0–1 (PyTorch convention), ' +
      'float NHWC and uint8 models get raw 0–255 (Keras/TF convention, preprocessing in the graph); ' +
      '`imagenet`; `none` (0–255); `custom`',
  },
  scale: {
    shownDefault: '`1/255`',
    doc:
      'custom normalization: value = (pixel × scale − mean[c]) / std[c]; ' +
      'setting it, `PIXEL_MEAN` or `PIXEL_STD` implies `custom`',
  },
  mean: { shownDefault: '`0,0,0`', doc: 'custom normalization: the mean per channel' },
  std: { shownDefault: '`1,1,1`', doc: 'custom normalization: the standard deviation per channel' },
  padColor: { shownDefault: '`0,0,0`', doc: 'letterbox padding and the colour transparent pixels are flattened onto' },
  softmax: {
    shownDefault: '`auto`',
    doc: '`auto` applies softmax unless each row already is a distribution; `always`; `never`',
  },
};

/** Serialises the options that differ from the defaults (so pod specs stay short). */
export function preprocessingToEnv(options: Partial<PreprocessingOptions>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of Object.keys(PREPROCESSING_ENV) as (keyof PreprocessingOptions)[]) {
    const value = options[key];
    if (value === undefined) continue;
    env[PREPROCESSING_ENV[key]] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return env;
}

function oneOf<T extends string>(name: string, raw: string, allowed: readonly T[]): T {
  const match = allowed.find((a) => a.toLowerCase() === raw.trim().toLowerCase());
  if (match === undefined) throw new Error(`${name}=${raw}: expected one of ${allowed.join(', ')}`);
  return match;
}

function finite(name: string, raw: string): number {
  const n = Number(raw.trim());
  if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`${name}=${raw}: expected a number`);
  return n;
}

function triple(name: string, raw: string, check: (n: number) => boolean, what: string): Triple {
  const parts = raw.split(',').map((p) => finite(name, p));
  if (parts.length !== 3 || !parts.every(check))
    throw new Error(`${name}=${raw}: expected three comma-separated ${what}`);
  return [parts[0]!, parts[1]!, parts[2]!];
}

/** Parses the options back out of an environment; throws one message listing every bad variable. */
export function preprocessingFromEnv(env: NodeJS.ProcessEnv): PreprocessingOptions {
  const errors: string[] = [];
  const out: PreprocessingOptions = {
    ...DEFAULT_PREPROCESSING,
    mean: [...DEFAULT_PREPROCESSING.mean],
    std: [...DEFAULT_PREPROCESSING.std],
    padColor: [...DEFAULT_PREPROCESSING.padColor],
  };
  const read = <K extends keyof PreprocessingOptions>(
    key: K,
    parse: (name: string, raw: string) => PreprocessingOptions[K],
  ) => {
    const name = PREPROCESSING_ENV[key];
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return;
    try {
      out[key] = parse(name, raw);
    } catch (err) {
      errors.push((err as Error).message);
    }
  };
  read('resizeMode', (n, r) => oneOf(n, r, RESIZE_MODES));
  read('channelOrder', (n, r) => oneOf(n, r, CHANNEL_ORDERS));
  read('layout', (n, r) => oneOf(n, r, LAYOUTS));
  read('normalization', (n, r) => oneOf(n, r, NORMALIZATIONS));
  read('softmax', (n, r) => oneOf(n, r, SOFTMAX_MODES));
  read('scale', (n, r) => {
    const v = finite(n, r);
    if (v <= 0) throw new Error(`${n}=${r}: expected a positive number`);
    return v;
  });
  read('mean', (n, r) => triple(n, r, () => true, 'numbers'));
  read('std', (n, r) => triple(n, r, (v) => v > 0, 'positive numbers'));
  read('padColor', (n, r) => triple(n, r, (v) => Number.isInteger(v) && v >= 0 && v <= 255, 'integers 0-255'));
  if (errors.length > 0) throw new Error(`invalid preprocessing configuration: ${errors.join('; ')}`);
  // Giving a mean, std or scale only makes sense with custom normalization; don't make users say it twice.
  const customised = ['scale', 'mean', 'std'].some((k) => (env[PREPROCESSING_ENV[k as 'scale']] ?? '').trim() !== '');
  if (customised && (env[PREPROCESSING_ENV.normalization] ?? '').trim() === '') out.normalization = 'custom';
  return out;
}
