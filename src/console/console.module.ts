import { Module } from '@nestjs/common';

import { ConsoleController } from './console.controller';
import { SessionController } from './session.controller';

/** The web console's page and files, and the two API routes only it needs (`/api/me`, `/api/projects`). */
@Module({ controllers: [ConsoleController, SessionController] })
export class ConsoleModule {}
