import { expect } from 'chai';
import { labelsFromMetadata, parseLabels } from '../../src/model/labels.js';
import { looksLikeProbabilities, softmax, toProbabilities, topK } from '../../src/model/postprocess.js';

describe('postprocessing', () => {
  it('softmax is stable for large logits and sums to 1', () => {
    const p = softmax([1000, 1001, 1002]);
    expect(p.reduce((a, b) => a + b, 0)).to.be.closeTo(1, 1e-6);
    expect(p[2]).to.be.closeTo(0.665, 1e-3);
  });

  it('detects rows that already are probabilities', () => {
    expect(looksLikeProbabilities([0.2, 0.3, 0.5])).to.equal(true);
    expect(looksLikeProbabilities([2, -1, 0.5])).to.equal(false);
    expect(looksLikeProbabilities([0.2, 0.2, 0.2])).to.equal(false);
    const probs = new Float32Array([0.1, 0.9]);
    expect(toProbabilities(probs, 'auto')).to.equal(probs);
    expect(toProbabilities(new Float32Array([0.1, 0.9]), 'always')[1]).to.be.closeTo(0.69, 0.01);
    expect(toProbabilities(new Float32Array([3, 1]), 'never')[0]).to.equal(3);
  });

  it('top-k orders best first and keeps the lower index on ties', () => {
    expect(topK([0.1, 0.5, 0.2, 0.5, 0.05], 3)).to.deep.equal([
      { index: 1, score: 0.5 },
      { index: 3, score: 0.5 },
      { index: 2, score: 0.2 },
    ]);
    expect(topK([1, 2], 5).map((p) => p.index)).to.deep.equal([1, 0]);
  });
});

describe('labels', () => {
  it('reads one label per line, keeping inner blanks and dropping trailing ones', () => {
    expect(parseLabels('\uFEFFtench\r\ngoldfish\n\ngreat white shark\n\n')).to.deep.equal([
      'tench',
      'goldfish',
      '',
      'great white shark',
    ]);
  });

  it('reads JSON arrays and index objects, Python repr included', () => {
    expect(parseLabels('["cat", "dog"]')).to.deep.equal(['cat', 'dog']);
    expect(parseLabels('{"1": "dog", "0": "cat"}')).to.deep.equal(['cat', 'dog']);
    expect(parseLabels("{0: 'person', 1: 'bicycle'}")).to.deep.equal(['person', 'bicycle']);
    expect(() => parseLabels('{0: "a", 2: "c"}')).to.throw(/no entry for index 1/);
    expect(() => parseLabels('[1, 2]')).to.throw(/only strings/);
    expect(() => parseLabels('  \n')).to.throw(/empty/);
  });

  it('finds labels under the keys exporters use', () => {
    expect(labelsFromMetadata({ names: "{0: 'a', 1: 'b'}" })).to.deep.equal(['a', 'b']);
    expect(labelsFromMetadata({ author: 'me' })).to.equal(undefined);
  });
});
