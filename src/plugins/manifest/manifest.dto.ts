// Placeholder: the manifest DTO (class-validator) is written with the registry.
export class ManifestDto {
  public name!: string;
  public displayName!: string;
  public entry!: string;
  public server?: string;
  public readyTimeoutMs?: number;
  public maxMessageBytes?: number;
  public secrets?: { key: string; description?: string; required?: boolean }[];
  public restart?: {
    enabled?: boolean;
    maxFailedStarts?: number;
    initialBackoffMs?: number;
    maxBackoffMs?: number;
    healthyAfterMs?: number;
  };
}
