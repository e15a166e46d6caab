// One-line messages for errors a user can act on (disk full, permission denied) instead of traces.

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only filesystem',
  EFBIG: 'file too large',
  ENOENT: 'no such file or directory',
  EIO: 'input/output error',
};

export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const errno = error as NodeJS.ErrnoException;
    if (errno.code !== undefined && ERRNO_TEXT[errno.code] !== undefined) {
      const where = errno.path ? ` ${(errno as { dest?: string }).dest ? `${errno.path} → ${(errno as { dest?: string }).dest}` : errno.path}` : '';
      return `cannot ${errno.syscall ?? 'access'}${where}: ${ERRNO_TEXT[errno.code]}`;
    }
    return error.message;
  }
  return String(error);
}
