/** Copies every reflect-metadata entry of `from` to `to`, so route, guard and Swagger metadata survive wrapping. */
export function copyMethodMetadata(from: object, to: object): void {
  for (const key of Reflect.getOwnMetadataKeys(from)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, from), to);
  }
}
