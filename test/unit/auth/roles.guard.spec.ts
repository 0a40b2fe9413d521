import { Reflector } from '@nestjs/core';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';

import { CurrentUser } from '../../../src/auth/current-user.decorator';
import { ADMIN_ROLE, Principal } from '../../../src/auth/principal';
import { Roles } from '../../../src/auth/roles.decorator';
import { RolesGuard } from '../../../src/auth/roles.guard';
import { httpContext, refusal, request } from './auth-context';

@Roles('operator')
class OperatorRoutes {
  public status(): void {}

  @Roles(ADMIN_ROLE)
  public wipe(): void {}
}

class ApiRoutes {
  public list(): void {}

  @Roles(ADMIN_ROLE)
  public rescan(): void {}

  @Roles(ADMIN_ROLE, 'ops')
  public both(): void {}

  public whoAmI(@CurrentUser() _user: Principal): void {}
}

const user = (...roles: string[]): Principal => ({
  id: 'u',
  name: 'U',
  roles,
  iat: 0,
  exp: undefined,
});

function as(principal: Principal | undefined, controller: new () => object, method: string) {
  const req = request('/api/plugins');
  req.user = principal;
  return httpContext(req, controller, method as never);
}

describe('RolesGuard', () => {
  const guard = new RolesGuard(new Reflector());

  it('lets any user into a route without @Roles', () => {
    expect(guard.canActivate(as(user(), ApiRoutes, 'list'))).toBe(true);
  });

  it('lets a user with the role in', () => {
    expect(guard.canActivate(as(user('user', ADMIN_ROLE), ApiRoutes, 'rescan'))).toBe(true);
  });

  it('answers 403 naming the missing role', async () => {
    expect(await refusal(() => guard.canActivate(as(user('user'), ApiRoutes, 'rescan')))).toEqual({
      status: 403,
      body: { statusCode: 403, error: 'Forbidden', message: 'requires role admin' },
    });
  });

  it('needs every listed role', async () => {
    expect(guard.canActivate(as(user('ops', ADMIN_ROLE), ApiRoutes, 'both'))).toBe(true);
    const result = await refusal(() => guard.canActivate(as(user(ADMIN_ROLE), ApiRoutes, 'both')));
    expect(result.status).toBe(403);
    expect(result.body).toMatchObject({ message: 'requires role ops' });
  });

  it('takes the handler roles over the controller roles', async () => {
    expect(guard.canActivate(as(user('operator'), OperatorRoutes, 'status'))).toBe(true);
    expect(guard.canActivate(as(user(ADMIN_ROLE), OperatorRoutes, 'wipe'))).toBe(true);
    expect(
      (await refusal(() => guard.canActivate(as(user('operator'), OperatorRoutes, 'wipe')))).status,
    ).toBe(403);
  });

  it('answers 401 when a role is required but nobody is signed in', async () => {
    expect(
      (await refusal(() => guard.canActivate(as(undefined, ApiRoutes, 'rescan')))).status,
    ).toBe(401);
  });
});

describe('@CurrentUser()', () => {
  type Factory = (data: unknown, ctx: ReturnType<typeof as>) => Principal;
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, ApiRoutes, 'whoAmI') as Record<
    string,
    { factory: Factory }
  >;
  const factory = Object.values(args)[0]?.factory as Factory;

  it('returns the principal JwtAuthGuard put on the request', () => {
    const principal = user(ADMIN_ROLE);
    expect(factory(undefined, as(principal, ApiRoutes, 'whoAmI'))).toBe(principal);
  });

  it('answers 401 rather than yield undefined on a route without a user', async () => {
    expect(
      (await refusal(() => factory(undefined, as(undefined, ApiRoutes, 'whoAmI')))).status,
    ).toBe(401);
  });
});
