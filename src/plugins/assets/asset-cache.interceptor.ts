import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { map, Observable } from 'rxjs';

import type { Request, Response } from 'express';

import { AssetFile } from './asset-file';

/**
 * Lets browsers keep plugin files but revalidate every use (`Cache-Control: no-cache` + strong
 * ETag), so a plugin update shows up on the next load; answers 304 with no body on a match.
 */
@Injectable()
export class AssetCacheInterceptor implements NestInterceptor {
  public intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    return next.handle().pipe(
      map((body: unknown) => {
        if (!(body instanceof AssetFile)) return body;
        res.setHeader('Cache-Control', 'no-cache');
        res.setHeader('ETag', body.etag);
        // Express's send() turns an empty reply into the 304 by this very test (If-None-Match
        // against the ETag just set), so ask it rather than re-implement it and disagree.
        if (!req.fresh) return body;
        body.discard();
        return undefined;
      }),
    );
  }
}
