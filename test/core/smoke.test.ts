import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/core/duration.js';
import type { HttpSmokeCheck, SmokeCheck } from '../../src/core/model.js';
import {
  bodyExcerpt,
  buildHttpRequest,
  checkName,
  deepEqual,
  describeCheck,
  encodeMqttPayload,
  evaluateHttpExpectation,
  lookupJsonPath,
  mqttMessageMatches,
} from '../../src/core/smoke.js';

const res = (status: number, body = '', headers: Record<string, string> = {}) => ({ status, body, headers });
type Expect = HttpSmokeCheck['expect'];

describe('evaluateHttpExpectation', () => {
  it.each<[string, Expect, ReturnType<typeof res>, boolean, string]>([
    ['any 2xx by default', undefined, res(204), true, 'HTTP 204'],
    ['a 3xx is not 2xx', undefined, res(302, 'moved'), false, 'expected a 2xx status, got 302: moved'],
    ['an exact status', { status: 200 }, res(200, 'ok'), true, 'HTTP 200'],
    ['a wrong status shows the body', { status: 200 }, res(502, 'Bad gateway:\n  upstream down'), false, 'expected status 200, got 502: Bad gateway: upstream down'],
    ['a wrong status with an empty body', { status: 200 }, res(500), false, 'expected status 200, got 500: (empty body)'],
    ['a 4xx can be expected', { status: 400 }, res(400, '{"error":"x"}'), true, 'HTTP 400'],
    ['exact body', { body: 'pong' }, res(200, 'pong'), true, 'HTTP 200; body matches'],
    ['exact body mismatch', { body: 'pong' }, res(200, 'pong\n'), false, 'expected body "pong", got "pong\\n"'],
    ['body contains', { bodyContains: 'RedForge' }, res(200, '<h1>RedForge</h1>'), true, 'HTTP 200; body contains "RedForge"'],
    ['body does not contain', { bodyContains: 'Tower' }, res(200, '<h1>RedForge</h1>'), false, 'expected the body to contain "Tower", got: <h1>RedForge</h1>'],
    ['json equals', { json: { path: 'text', equals: 'hello' } }, res(200, '{"text":"hello"}'), true, 'HTTP 200; json path text = "hello"'],
    ['json equals through an array', { json: { path: 'sources.0.docId', equals: 'smoke' } }, res(200, '{"sources":[{"docId":"x"}]}'), false, 'json path sources.0.docId: expected "smoke", got "x"'],
    ['json equals a number, not a string', { json: { path: 'count', equals: 2 } }, res(200, '{"count":"2"}'), false, 'json path count: expected 2, got "2"'],
    ['json equals an object, any key order', { json: { path: 'a', equals: { x: 1, y: [1, 2] } } }, res(200, '{"a":{"y":[1,2],"x":1}}'), true, 'HTTP 200; json path a = {"x":1,"y":[1,2]}'],
    ['json equals false', { json: { path: 'ok', equals: false } }, res(200, '{"ok":false}'), true, 'HTTP 200; json path ok = false'],
    ['json equals null', { json: { path: 'v', equals: null } }, res(200, '{"v":null}'), true, 'HTTP 200; json path v = null'],
    ['json exists', { json: { path: 'counts', exists: true } }, res(200, '{"counts":{}}'), true, 'HTTP 200; json path counts exists'],
    ['json exists, null counts as there', { json: { path: 'v', exists: true } }, res(200, '{"v":null}'), true, 'HTTP 200; json path v exists'],
    ['json missing key names the keys there', { json: { path: 'results', exists: true } }, res(200, '{"error":"boom","instance":"storage"}'), false, 'json path results: expected it to exist, but it is missing (the response has no "results"; it has "error", "instance")'],
    ['json path past the end of a list', { json: { path: 'sources.0.docId', equals: 'smoke' } }, res(200, '{"sources":[]}'), false, 'json path sources.0.docId: expected "smoke", but it is missing (sources is a list of 0 items, no item "0")'],
    ['json path into a string', { json: { path: 'text.length', exists: true } }, res(200, '{"text":"hi"}'), false, 'json path text.length: expected it to exist, but it is missing (text is the string "hi", not an object or list)'],
    ['json must not exist', { json: { path: 'error', exists: false } }, res(200, '{"ok":true}'), true, 'HTTP 200; json path error is absent'],
    ['json must not exist but does', { json: { path: 'error', exists: false } }, res(200, '{"error":"boom"}'), false, 'json path error: expected it not to exist, got "boom"'],
    ['json path alone means it must exist', { json: { path: 'answer' } }, res(200, '{}'), false, 'json path answer: expected it to exist, but it is missing (the response has no "answer"; it is empty)'],
    ['not JSON', { json: { path: 'text', equals: 'hello' } }, res(200, '<html>oops</html>'), false, 'expected a JSON body (for json path text), got: <html>oops</html>'],
    ['every failing body check reports', { bodyContains: 'x', json: { path: 'a', equals: 1 } }, res(200, '{"a":2}'), false, 'expected the body to contain "x", got: {"a":2}; json path a: expected 1, got 2'],
    ['status fails first, body checks are skipped', { status: 200, json: { path: 'a', equals: 1 } }, res(404, 'Cannot POST /x'), false, 'expected status 200, got 404: Cannot POST /x'],
  ])('%s', (_what, expectation, response, ok, message) => {
    expect(evaluateHttpExpectation(expectation, response)).toEqual({ ok, message });
  });

  it('quotes at most 200 characters of a body', () => {
    const out = evaluateHttpExpectation({ status: 200 }, res(500, 'x'.repeat(1000)));
    expect(out.message).toBe(`expected status 200, got 500: ${'x'.repeat(200)}…`);
  });
});

describe('lookupJsonPath and deepEqual', () => {
  const doc = { a: { b: [{ c: 1 }, { c: [true] }] }, '0': 'zero', e: null };
  it.each<[string, boolean, unknown]>([
    ['a.b.0.c', true, 1],
    ['a.b.1.c.0', true, true],
    ['0', true, 'zero'],
    ['e', true, null],
    ['', true, doc],
    ['a.b.2', false, undefined],
    ['a.b.x', false, undefined],
    ['a.b.01', false, undefined],
    ['e.f', false, undefined],
  ])('%s', (path, found, value) => {
    const r = lookupJsonPath(doc, path);
    expect(r.found).toBe(found);
    if (r.found) expect(r.value).toEqual(value);
  });

  it.each<[unknown, unknown, boolean]>([
    [1, 1, true],
    [1, '1', false],
    [null, null, true],
    [null, {}, false],
    [[1, 2], [1, 2], true],
    [[1, 2], [2, 1], false],
    [{ a: 1, b: 2 }, { b: 2, a: 1 }, true],
    [{ a: 1 }, { a: 1, b: undefined }, false],
    [[], {}, false],
    [{ a: [{ b: 'x' }] }, { a: [{ b: 'x' }] }, true],
  ])('deepEqual(%j, %j) = %s', (a, b, want) => {
    expect(deepEqual(a, b)).toBe(want);
  });
});

describe('describeCheck and checkName', () => {
  it.each<[SmokeCheck, string, string]>([
    [{ http: { method: 'POST', path: '/convert' } }, 'POST /convert', 'POST /convert'],
    [{ http: { path: '/stats' } }, 'GET /stats', 'GET /stats'],
    [{ name: 'reports stats', http: { method: 'get', path: '/stats' } }, 'GET /stats', 'reports stats'],
    [{ mqtt: { publish: { topic: 'redforge/chunks' }, expect: { topic: 'redforge/vectors' } } }, 'MQTT redforge/chunks -> redforge/vectors', 'MQTT redforge/chunks -> redforge/vectors'],
    [{}, '(empty check)', '(empty check)'],
  ])('%j', (check, description, name) => {
    expect(describeCheck(check)).toBe(description);
    expect(checkName(check)).toBe(name);
  });
});

describe('buildHttpRequest', () => {
  it('sends strings as they are, as text/plain', () => {
    expect(buildHttpRequest({ method: 'POST', path: '/convert', body: '  hello \r\n' })).toEqual({
      method: 'POST',
      path: '/convert',
      headers: { 'Content-Type': 'text/plain; charset=utf-8' },
      body: '  hello \r\n',
    });
  });
  it('keeps a Content-Type the check gives, whatever its case', () => {
    expect(buildHttpRequest({ method: 'POST', path: '/x', headers: { 'content-type': 'text/csv' }, body: 'a,b' }).headers).toEqual({ 'content-type': 'text/csv' });
    expect(buildHttpRequest({ method: 'POST', path: '/x', headers: { 'Content-Type': 'application/vnd.x+json' }, body: { a: 1 } })).toMatchObject({ headers: { 'Content-Type': 'application/vnd.x+json' }, body: '{"a":1}' });
  });
  it('sends anything else as JSON', () => {
    expect(buildHttpRequest({ method: 'POST', path: '/search', body: { vector: [1, 0, 0], k: 1 } })).toMatchObject({ headers: { 'Content-Type': 'application/json' }, body: '{"vector":[1,0,0],"k":1}' });
    expect(buildHttpRequest({ method: 'POST', path: '/n', body: 42 }).body).toBe('42');
    expect(buildHttpRequest({ method: 'POST', path: '/n', body: false }).body).toBe('false');
  });
  it('sends no body when there is none', () => {
    expect(buildHttpRequest({ path: '/stats' })).toEqual({ method: 'GET', path: '/stats', headers: {} });
    expect(buildHttpRequest({ path: '/stats', body: null })).toEqual({ method: 'GET', path: '/stats', headers: {} });
  });
});

describe('MQTT payloads', () => {
  it.each<[unknown, string]>([
    [undefined, ''],
    ['plain', 'plain'],
    [{ docId: 'tower-smoke', smoke: true }, '{"docId":"tower-smoke","smoke":true}'],
    [3, '3'],
  ])('encodes %j', (payload, text) => expect(encodeMqttPayload(payload)).toBe(text));

  it('matches on a substring, or anything without payloadContains', () => {
    expect(mqttMessageMatches('{"docId":"tower-smoke"}', '"docId":"tower-smoke"')).toBe(true);
    expect(mqttMessageMatches('{"docId":"other"}', '"docId":"tower-smoke"')).toBe(false);
    expect(mqttMessageMatches('', undefined)).toBe(true);
  });
});

describe('bodyExcerpt', () => {
  it('puts a body on one line', () => expect(bodyExcerpt('a\n\n  b\tc ')).toBe('a b c'));
  it('says when a body is empty', () => expect(bodyExcerpt(' \n')).toBe('(empty body)'));
});

describe('parseDuration and formatDuration', () => {
  it.each<[string, number]>([
    ['0ms', 0],
    ['500ms', 500],
    ['1s', 1000],
    ['30s', 30_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    [' 10s ', 10_000],
  ])('parseDuration(%j) = %d', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', '10', 's', '1.5s', '-1s', '10 s', '10sec', '1d', '1m30s'])('refuses %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/invalid duration .*expected a whole number and a unit \(ms, s, m or h\)/);
  });

  it.each<[number, string]>([
    [0, '0 ms'],
    [500, '500 ms'],
    [1000, '1 s'],
    [1500, '1.5 s'],
    [10_000, '10 s'],
    [120_000, '2 min'],
    [5_400_000, '1.5 h'],
  ])('formatDuration(%d) = %j', (ms, text) => expect(formatDuration(ms)).toBe(text));
});
