/**
 * The client a per-address limit counts (public reads, /v1/verify, signed requests, key lookups, event
 * streams). An IPv4 address is one client. Over IPv6 one subscriber is routinely given a whole /64, 2^64
 * addresses to pick from, so an IPv6 address counts by its /64 (`2001:db8:1:2::/64`): a fresh address
 * per request would otherwise get a fresh bucket each time. An IPv4 address mapped into IPv6
 * (`::ffff:203.0.113.7`, as a dual-stack listener reports IPv4 clients) is the IPv4 address. Anything
 * that is not an IP address (`unknown`) is kept as it is.
 */
export function addressBucket(address: string): string {
  if (!address.includes(':')) return address;
  const groups = ipv6Groups(address);
  if (groups === undefined) return address;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (a zone, `%eth0`, ignored), or undefined. */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.replace(/%.*$/, '');
  // A trailing dotted IPv4 part (`::ffff:203.0.113.7`) is two groups.
  const v4 = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const bytes = v4.slice(2, 6).map(Number);
    if (bytes.some((b) => b > 255)) return undefined;
    const [a = 0, b = 0, c = 0, d = 0] = bytes;
    text = `${v4[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const part = (s: string | undefined) => (s ? s.split(':') : []);
  const head = part(halves[0]);
  const tail = part(halves[1]);
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array<string>(missing).fill('0'), ...tail];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return all.map((g) => Number.parseInt(g, 16));
}
