import { describe, expect, it } from 'vitest';
import { tolkBase } from '../src/tolk-base';

describe("where Tolk is, from the plugin's own address", () => {
  it('is the address before bbb-plugin/', () => {
    expect(tolkBase('https://tolk.example.org/bbb-plugin/TolkInterpretation.js')).toBe('https://tolk.example.org/');
    expect(tolkBase('https://host.example/tolk/bbb-plugin/TolkInterpretation-0.0.js?v=3#x')).toBe('https://host.example/tolk/');
  });

  it("is the bundle's folder when it is served elsewhere", () => {
    expect(tolkBase('http://127.0.0.1:8080/static/TolkInterpretation.js')).toBe('http://127.0.0.1:8080/static/');
  });
});
