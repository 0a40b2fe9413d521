import { SetMetadata } from '@nestjs/common';

export const REQUIRED_ROLES = 'portico:roles';

/** The route needs every one of these roles (e.g. `@Roles(ADMIN_ROLE)`). */
export const Roles = (...roles: string[]): MethodDecorator & ClassDecorator =>
  SetMetadata(REQUIRED_ROLES, roles);
