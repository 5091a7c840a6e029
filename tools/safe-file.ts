// Reading and writing files in a folder the user (or anyone with access to it) can also change:
// nothing is followed out of it and nothing but a plain file is touched.
//   - the folder itself must be a real directory, not a symbolic link;
//   - a file is opened with O_NOFOLLOW (a symlink fails) and O_NONBLOCK (a FIFO cannot hang the
//     process), then checked with fstat: a regular file with one link only (a hard link would let
//     a write reach, or a read reveal, a file outside the folder);
//   - writes go to a fresh temporary file in the folder, then are renamed (overwrite) or linked
//     (create, failing if the name exists) into place: a reader never sees half a file, and the old
//     inode is never written through;
//   - everything is asynchronous, so a slow file holds up nobody else.
import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export class UnsafeFileError extends Error {}

/** Why an existing directory entry must not be used, or null when it is a plain, singly-linked file. */
function unsafeKind(st: Stats): string | null {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  if (!st.isFile()) return 'not a regular file';
  if (st.nlink > 1) return `a hard link (${st.nlink} names for one file)`;
  return null;
}

/** Creates `dir` if missing; refuses it when it is a symbolic link or not a directory. */
export async function ensureRealDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const st = await lstat(dir);
  if (st.isSymbolicLink()) throw new UnsafeFileError(`${dir} is a symbolic link; NeuroScope does not follow links out of its data directory (make it a real folder)`);
  if (!st.isDirectory()) throw new UnsafeFileError(`${dir} is not a directory`);
}

async function entry(file: string): Promise<Stats | null> {
  try {
    return await lstat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** The text of `file` (inside a checked folder), refusing anything but a plain, singly-linked file of at most maxBytes. */
export async function readPlainFile(file: string, maxBytes: number): Promise<string> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new UnsafeFileError(`${file} is a symbolic link; NeuroScope does not follow it`);
    throw e;
  }
  try {
    const st = await fh.stat();
    const bad = unsafeKind(st);
    if (bad) throw new UnsafeFileError(`${file} is ${bad}; NeuroScope reads only plain files here`);
    if (st.size > maxBytes) throw new UnsafeFileError(`${file} is ${st.size} bytes, over the ${maxBytes}-byte limit`);
    return await fh.readFile({ encoding: 'utf8' });
  } finally {
    await fh.close();
  }
}

/**
 * Writes `text` to `dir/name` atomically. Without `overwrite` an existing name is an error
 * (code EEXIST); with it, only a plain, singly-linked file is replaced.
 */
export async function writePlainFileAtomic(dir: string, name: string, text: string, overwrite: boolean): Promise<void> {
  await ensureRealDir(dir);
  const target = join(dir, name);
  const existing = await entry(target);
  if (existing) {
    if (!overwrite) throw Object.assign(new UnsafeFileError(`${target} already exists`), { code: 'EEXIST' });
    const bad = unsafeKind(existing);
    if (bad) throw new UnsafeFileError(`${target} is ${bad}; NeuroScope replaces only plain files (remove it by hand if it is yours)`);
  }
  const temp = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (overwrite) await rename(temp, target);
    else await link(temp, target); // fails with EEXIST if the name appeared meanwhile
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}
