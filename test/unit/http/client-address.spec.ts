import fc from 'fast-check';

import {
  addressMatcher,
  clientKey,
  isAddressOrSubnet,
  unmapIPv4,
} from '../../../src/http/client-address';

describe('client addresses', () => {
  describe('clientKey', () => {
    it.each([
      ['203.0.113.7', '203.0.113.7'],
      ['::ffff:203.0.113.7', '203.0.113.7'],
      ['::ffff:cb00:7107', '203.0.113.7'],
      ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
      ['2001:DB8:1:2::9', '2001:db8:1:2::/64'],
      ['2001:db8::1', '2001:db8:0:0::/64'],
      ['::1', '0:0:0:0::/64'],
      ['fe80::1%eth0', 'fe80:0:0:0::/64'],
      ['64:ff9b::203.0.113.7', '64:ff9b:0:0::/64'],
    ])('%s → %s', (address, key) => {
      expect(clientKey(address)).toBe(key);
    });

    it.each([undefined, '', 'localhost', '1.2.3', '2001:db8::1::2', '::ffff:1.2.3.4.5'])(
      '%j → undefined',
      (address) => {
        expect(clientKey(address)).toBeUndefined();
      },
    );

    it('puts every address of one /64 under one key, and no other', () => {
      const group = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
      const groups = (n: number) => fc.array(group, { minLength: n, maxLength: n });
      fc.assert(
        fc.property(groups(4), groups(4), groups(4), (prefix, a, b) => {
          const one = clientKey([...prefix, ...a].join(':'));
          expect(one).toBe(clientKey([...prefix, ...b].join(':')));
          expect(one).toMatch(/::\/64$/);
        }),
      );
    });

    it('never throws', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 50 }), (s) => {
          expect(() => clientKey(s)).not.toThrow();
          expect(() => unmapIPv4(s)).not.toThrow();
        }),
      );
    });
  });

  describe('addressMatcher (HEADER_PHASE_CAP_EXEMPT)', () => {
    const exempt = addressMatcher(['127.0.0.1', '10.0.0.0/8', 'fd00::/8', '::ffff:192.0.2.1']);

    it.each([
      ['127.0.0.1', true],
      ['::ffff:127.0.0.1', true],
      ['10.200.3.4', true],
      ['::ffff:10.200.3.4', true],
      ['fd12:3456::1', true],
      ['192.0.2.1', true],
      ['127.0.0.2', false],
      ['11.0.0.1', false],
      ['fe80::1', false],
      ['not-an-address', false],
    ])('%s → %s', (address, matches) => {
      expect(exempt(address)).toBe(matches);
    });

    it('matches nothing when empty', () => {
      expect(addressMatcher([])('127.0.0.1')).toBe(false);
    });
  });

  describe('isAddressOrSubnet', () => {
    it.each(['127.0.0.1', '10.0.0.0/8', '0.0.0.0/0', '::1', 'fd00::/8', '::/0', '2001:db8::/128'])(
      '%s → true',
      (entry) => {
        expect(isAddressOrSubnet(entry)).toBe(true);
      },
    );

    it.each([
      '',
      'proxy.internal',
      '10.0.0.0/33',
      '::1/129',
      '10.0.0.0/8/8',
      '10.0.0.0/x',
      '1.2.3',
    ])('%j → false', (entry) => {
      expect(isAddressOrSubnet(entry)).toBe(false);
    });
  });
});
