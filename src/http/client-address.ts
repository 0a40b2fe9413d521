import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';

/** A `HEADER_PHASE_CAP_EXEMPT` entry: an IPv4/IPv6 address, or a subnet `address/prefix`. */
export function isAddressOrSubnet(entry: string): boolean {
  return parseEntry(entry) !== undefined;
}

/**
 * A predicate over client addresses built from addresses and subnets (entries as
 * isAddressOrSubnet accepts; others are ignored, config validation refuses them first).
 * IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack listener reports) match the
 * IPv4 entries.
 */
export function addressMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  let empty = true;
  for (const entry of entries) {
    const parsed = parseEntry(entry);
    if (parsed === undefined) continue;
    if (parsed.prefix === undefined) list.addAddress(parsed.address, parsed.family);
    else list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    empty = false;
  }
  // Asked once per accepted connection: with nothing listed (the default), not even a lookup
  // (BlockList.check builds a SocketAddress each time, ~5 µs of a handshake).
  if (empty) return () => false;
  return (address) => {
    const plain = unmapIPv4(address);
    const family = isIP(plain);
    return family !== 0 && list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  };
}

/**
 * The unit a per-client limit counts by: an IPv4 address as is (IPv4-mapped IPv6 unwrapped), an
 * IPv6 address by its /64, since one subscriber usually gets a whole /64 and could otherwise
 * spread over 2^64 addresses. Undefined for anything that is not an IP address.
 */
export function clientKey(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const plain = unmapIPv4(address);
  if (isIPv4(plain)) return plain;
  const groups = ipv6Groups(plain);
  if (groups === undefined) return undefined;
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** `::ffff:a.b.c.d` (and its hex spelling) as `a.b.c.d`; any other address unchanged. */
export function unmapIPv4(address: string): string {
  if (!address.includes(':')) return address;
  const groups = ipv6Groups(address);
  if (groups === undefined) return address;
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (!mapped) return address;
  const [high = 0, low = 0] = groups.slice(6);
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** The eight 16-bit groups of an IPv6 address (zone index ignored), or undefined. */
function ipv6Groups(address: string): number[] | undefined {
  const withoutZone = address.split('%', 1)[0] ?? '';
  if (!isIPv6(withoutZone)) return undefined;
  let text = withoutZone.toLowerCase();
  // A trailing dotted IPv4 part is two groups.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const part = (s: string | undefined): number[] =>
    s === undefined || s === '' ? [] : s.split(':').map((g) => parseInt(g, 16));
  const left = part(head);
  const right = part(tail);
  const zeros = tail === undefined ? [] : new Array<number>(8 - left.length - right.length).fill(0);
  const groups = [...left, ...zeros, ...right];
  return groups.length === 8 ? groups : undefined;
}

interface Entry {
  readonly address: string;
  readonly family: 'ipv4' | 'ipv6';
  readonly prefix: number | undefined;
}

function parseEntry(entry: string): Entry | undefined {
  const [raw = '', prefixText, extra] = entry.trim().split('/');
  if (extra !== undefined) return undefined;
  const address = prefixText === undefined ? unmapIPv4(raw) : raw;
  const family = isIP(address);
  if (family === 0) return undefined;
  if (prefixText === undefined)
    return { address, family: family === 4 ? 'ipv4' : 'ipv6', prefix: undefined };
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > (family === 4 ? 32 : 128)) return undefined;
  return { address, family: family === 4 ? 'ipv4' : 'ipv6', prefix };
}
