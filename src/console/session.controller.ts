import { Controller, Get } from '@nestjs/common';

import { CurrentUser } from '../auth/current-user.decorator';
import { ADMIN_ROLE, Principal } from '../auth/principal';
import { PorticoConfig } from '../config/portico-config';
import { listProjects, Project } from './projects';

/** Who the console's user is, and what it may offer them. */
@Controller('api')
export class SessionController {
  public constructor(private readonly config: PorticoConfig) {}

  /** The caller as the token says: the console shows admin controls when `admin` is true. */
  @Get('me')
  public me(@CurrentUser() user: Principal): {
    id: string;
    name: string;
    roles: readonly string[];
    admin: boolean;
    expiresAt?: string;
  } {
    return {
      id: user.id,
      name: user.name,
      roles: user.roles,
      admin: user.roles.includes(ADMIN_ROLE),
      ...(user.exp !== undefined ? { expiresAt: new Date(user.exp * 1000).toISOString() } : {}),
    };
  }

  /** The sub-folders of PROJECTS_DIR, the projects a user may pick (`[]` when unset). */
  @Get('projects')
  public projects(): Promise<Project[]> {
    return listProjects(this.config.PROJECTS_DIR);
  }
}
