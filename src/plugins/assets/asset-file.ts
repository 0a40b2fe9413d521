import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { FileHandle, open } from 'node:fs/promises';
import { Readable } from 'node:stream';

import { StreamableFile } from '@nestjs/common';

import { PluginException, PluginExceptionCode } from '../shared/plugin.exception';
import { contentTypeFor } from './content-types';

/** Errors that mean "there is no such file (any more)" rather than a server fault. */
const NOT_FOUND_CODES = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP']);

/**
 * An opened plugin file, ready to stream, with the validator the cache interceptor needs.
 * Everything describes the one open descriptor, so the ETag always matches the bytes sent.
 */
export class AssetFile extends StreamableFile {
  private constructor(
    stream: Readable,
    /** Strong validator: changes whenever size, modification time or inode change. */
    public readonly etag: string,
    contentType: string,
    size: number,
  ) {
    super(stream, { type: contentType, length: size });
  }

  /** Opens `realPath` (already checked to be inside the plugin folder). */
  public static async open(realPath: string): Promise<AssetFile> {
    let handle: FileHandle;
    try {
      // O_NOFOLLOW: a file swapped for a symlink after the realpath check is not followed.
      handle = await open(realPath, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    } catch (err) {
      throw toNotFound(err);
    }
    try {
      const st = await handle.stat({ bigint: true });
      if (!st.isFile())
        throw new PluginException(PluginExceptionCode.FILE_NOT_FOUND, 'File not found');
      const size = Number(st.size);
      const etag = `"${createHash('sha1')
        .update(`${st.size}-${st.mtimeNs}-${st.ino}`)
        .digest('base64url')}"`;
      let stream: Readable;
      if (size > 0) {
        // Bounded by the size the headers announce, even if the file grows while it is sent.
        stream = handle.createReadStream({ start: 0, end: size - 1 });
      } else {
        await handle.close();
        stream = Readable.from([]);
      }
      return new AssetFile(stream, etag, contentTypeFor(realPath), size);
    } catch (err) {
      await handle.close();
      throw toNotFound(err);
    }
  }

  /** Releases the open file when the body will not be sent (e.g. a 304). */
  public discard(): void {
    this.getStream().destroy();
  }
}

function toNotFound(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && NOT_FOUND_CODES.has(code)
    ? new PluginException(PluginExceptionCode.FILE_NOT_FOUND, 'File not found')
    : err;
}
