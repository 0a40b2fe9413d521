import { ApiClient, ApiError, describeError } from './api-client';
import type { ContextStore } from './context-store';
import { h } from './dom';
import type { Project } from './types';

const PROJECT_KEY = 'portico-project';

/**
 * The project plugins work in (`context.project`): the folders `GET /api/projects` lists, or
 * none. The choice is remembered by name across visits.
 */
export class ProjectPicker {
  public readonly element: HTMLElement;
  private readonly select: HTMLSelectElement;
  private projects: Project[] = [];

  public constructor(
    private readonly api: ApiClient,
    private readonly context: ContextStore,
  ) {
    this.select = h('select', {
      id: 'project-select',
      'data-testid': 'project-select',
      disabled: true,
    });
    this.select.append(h('option', { value: '' }, 'No project'));
    this.select.addEventListener('change', () => this.choose(this.select.value));
    this.element = h(
      'div',
      { class: 'project-picker' },
      h('label', { for: 'project-select' }, 'Project'),
      this.select,
    );
  }

  /** Fills the list; a failure leaves "No project" (plugins then get `project: null`). */
  public async load(): Promise<void> {
    try {
      this.projects = await this.api.projects();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return; // the session is ending
      this.projects = [];
      this.select.title = `Projects could not be listed: ${describeError(error)}`;
    }
    const options = this.projects.map((p) => h('option', { value: p.name, title: p.path }, p.name));
    this.select.replaceChildren(
      h('option', { value: '' }, this.projects.length === 0 ? 'No projects' : 'No project'),
      ...options,
    );
    this.select.disabled = this.projects.length === 0;
    const remembered = readRemembered();
    const chosen = this.projects.some((p) => p.name === remembered) ? remembered : '';
    this.select.value = chosen;
    this.choose(chosen);
  }

  private choose(name: string): void {
    const project = this.projects.find((p) => p.name === name) ?? null;
    this.context.setProject(project);
    try {
      if (project === null) localStorage.removeItem(PROJECT_KEY);
      else localStorage.setItem(PROJECT_KEY, project.name);
    } catch {
      // Storage disabled: the choice lasts for this page only.
    }
  }
}

function readRemembered(): string {
  try {
    return localStorage.getItem(PROJECT_KEY) ?? '';
  } catch {
    return '';
  }
}
