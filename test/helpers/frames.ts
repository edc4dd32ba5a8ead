import * as ws from 'ws'

// ws exports its frame parser, but @types/ws does not declare it.
interface ReceiverLike {
  on (event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void
  on (event: 'error', listener: (err: Error) => void): void
  write (chunk: Buffer): void
}
const { Receiver } = ws as unknown as { Receiver: new (opts: { isServer: boolean }) => ReceiverLike }

/** Decodes `count` frames with ws's own Receiver, the same parser a client uses. */
export async function decode (frames: Buffer, count: number): Promise<string[]> {
  const receiver = new Receiver({ isServer: false })
  const got: string[] = []
  const done = new Promise<string[]>((resolve, reject) => {
    receiver.on('message', (data: Buffer, isBinary: boolean) => {
      if (got.push(isBinary ? 'binary!' : data.toString()) === count) resolve(got)
    })
    receiver.on('error', reject)
  })
  receiver.write(frames)
  return await done
}
