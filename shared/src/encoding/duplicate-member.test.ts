import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { duplicateMember, formatJsonPath } from './duplicate-member.ts';

describe('duplicateMember', () => {
  test('finds a name an object holds twice, at any depth, with the path of that object', () => {
    expect(duplicateMember('{"a":1,"a":2}')).toEqual({ name: 'a', path: [] });
    expect(duplicateMember('{"x":{"y":[1,{"z":1,"w":{},"z":2}]}}')).toEqual({
      name: 'z',
      path: ['x', 'y', 1],
    });
    expect(duplicateMember('[{"a":1},{"b":1,"b":1}]')).toEqual({ name: 'b', path: [1] });
    // The first one found, in the text's order.
    expect(duplicateMember('{"a":{"b":1,"b":2},"a":3}')?.name).toBe('b');
  });

  test('names are compared decoded: an escape is the same name, and so is the empty name', () => {
    expect(duplicateMember('{"output":"A","outp\\u0075t":"B"}')?.name).toBe('output');
    expect(duplicateMember('{"":1,"":2}')).toEqual({ name: '', path: [] });
    expect(duplicateMember('{"\\"q\\"":1,"\\u0022q\\u0022":2}')?.name).toBe('"q"');
    // Names that only look alike are not the same: case, and a name in a string value.
    expect(duplicateMember('{"a":1,"A":2,"b":"\\"a\\":1"}')).toBeUndefined();
  });

  test('the same name in sibling or nested objects is no duplicate', () => {
    expect(duplicateMember('{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}')).toBeUndefined();
    expect(duplicateMember('[1,"{\\"a\\":1,\\"a\\":2}",null,true]')).toBeUndefined();
    expect(duplicateMember('"x"')).toBeUndefined();
    expect(duplicateMember('{}')).toBeUndefined();
  });

  test('no text JSON.stringify writes has one; adding a repeated name anywhere is found', () => {
    const value = fc.jsonValue({ maxDepth: 4 });
    fc.assert(
      fc.property(value, (v) => {
        expect(duplicateMember(JSON.stringify(v))).toBeUndefined();
        const twice = JSON.stringify({ k: v }).replace('{"k":', '{"k":0,"k":');
        expect(duplicateMember(twice)).toEqual({ name: 'k', path: [] });
      }),
      { numRuns: 300 },
    );
  });

  test('brackets, commas, colons and quotes inside strings are text, not structure', () => {
    expect(duplicateMember('{"a":"{\\"a\\":1,[","b":"\\","a\\\\":"]}","c":[1,2]}')).toBeUndefined();
    expect(duplicateMember('{"s":"x\\\\","s":"y"}')?.name).toBe('s');
    expect(duplicateMember('[0,"a,b",{"k":1},{"k":[1,2],"j":{"z":1, "z" :2}}]')).toEqual({
      name: 'z',
      path: [3, 'j'],
    });
    expect(duplicateMember(' { "a" : 1 ,\n\t"a"\r: 2 } ')).toEqual({ name: 'a', path: [] });
  });

  test('a text nested far deeper than any stack is read (JSON.parse reads it too)', () => {
    const deep = `${'['.repeat(200_000)}{"a":1,"a":2}${']'.repeat(200_000)}`;
    expect(JSON.parse(deep)).toBeArray();
    expect(duplicateMember(deep)?.path.length).toBe(200_000);
    const fine = `{"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    expect(duplicateMember(fine)).toBeUndefined();
  });

  test('formatJsonPath names where the object is', () => {
    expect(formatJsonPath([])).toBe('(root)');
    expect(formatJsonPath(['transcript', 'packets', 3, 'body'])).toBe('transcript.packets[3].body');
    expect(formatJsonPath([0, 'a'])).toBe('[0].a');
  });
});
