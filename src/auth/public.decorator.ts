import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'portico:isPublic';

/** Marks a route or controller as open to anyone (health probes). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC, true);
