import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { TransportError } from '../../../src/errors.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../../../src/transport/endpoint.js';
import { failure } from '../../helpers/support.js';

const test = suite('endpoint parsing');

const good: [string, Endpoint][] = [
  ['tcp:127.0.0.1:4444', { kind: 'tcp', host: '127.0.0.1', port: 4444 }],
  ['tcp:0.0.0.0:0', { kind: 'tcp', host: '0.0.0.0', port: 0 }],
  ['tcp:localhost:65535', { kind: 'tcp', host: 'localhost', port: 65535 }],
  ['tcp:dest-host.example.org:8000', { kind: 'tcp', host: 'dest-host.example.org', port: 8000 }],
  ['unix:/tmp/multifd.sock', { kind: 'unix', path: '/tmp/multifd.sock' }],
  ['unix:relative/with:colon.sock', { kind: 'unix', path: 'relative/with:colon.sock' }],
  ['file:/var/lib/images/vm.mig', { kind: 'file', path: '/var/lib/images/vm.mig' }],
];

const bad: [string, string][] = [
  ['tcp:[::1]:4444', 'IPv6'],
  ['tcp:::1:4444', 'IPv6'],
  ['tcp:fe80::1:4444', 'IPv6'],
  ['tcp:127.0.0.1', 'HOST:PORT'],
  ['tcp::4444', 'host name'],
  ['tcp:127.0.0.1:', 'port'],
  ['tcp:127.0.0.1:65536', 'port'],
  ['tcp:127.0.0.1:-1', 'port'],
  ['tcp:127.0.0.1:44a', 'port'],
  ['tcp:127.0.0.1:123456', 'port'],
  ['tcp:bad host:1', 'host name'],
  ['unix:', 'path'],
  ['file:', 'path'],
  ['unix:/tmp/a\0b', 'NUL'],
  ['udp:127.0.0.1:4444', 'unknown scheme "udp"'],
  ['exec:cat', 'unknown scheme'],
  ['127.0.0.1:4444', 'unknown scheme "127.0.0.1"'],
  ['/tmp/image', 'no scheme'],
  ['', 'no scheme'],
  ['TCP:127.0.0.1:1', 'unknown scheme'],
];

test('parses tcp, unix and file endpoints and formats them back', () => {
  for (const [text, endpoint] of good) {
    assert.equal(parseEndpoint(text), endpoint, text);
    assert.is(formatEndpoint(endpoint), text, text);
  }
});

test('rejects everything else with ERR_ENDPOINT saying what is wrong', async () => {
  for (const [text, why] of bad) {
    const error = await failure(() => parseEndpoint(text), 'ERR_ENDPOINT');
    assert.instance(error, TransportError, text);
    assert.ok(error.message.includes(why), `${JSON.stringify(text)}: ${error.message}`);
    assert.ok(error.message.includes('tcp:HOST:PORT, unix:PATH or file:PATH'), text);
  }
});

test.run();
