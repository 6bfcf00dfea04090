// V8 keeps an object's properties either "fast" (a map with a descriptor array) or as a dictionary. Declaring a class
// that extends a primitive wrapper (`class VerbatimString extends String`: ioredis 6 has one, defined when it loads)
// turns that wrapper's prototype into a dictionary. Until something turns it back, every method of that prototype
// called on a primitive in optimized code (a string's charCodeAt, indexOf, slice, …) is a generic property lookup,
// in the whole process: a charCodeAt loop measured 6× slower, field decryption 25% slower.
//
// V8 makes a prototype fast again (for good) when a property store goes through an object that inherits from it,
// which primitives never do; this does that store for the three wrappers. It changes no behaviour and costs a few
// microseconds. fast-prototypes.test.ts checks on the Node in use that the cliff is there and that this undoes it
// (and the server's module graph, with ioredis). ADR 0016.

const WRAPPER_PROTOTYPES: readonly object[] = [String.prototype, Number.prototype, Boolean.prototype];

/** Puts String.prototype, Number.prototype and Boolean.prototype back into V8's fast mode (call after loading modules that subclass them). */
export function keepWrapperPrototypesFast(): void {
  for (const proto of WRAPPER_PROTOTYPES) {
    const heir = Object.create(proto) as { v8FastModeProbe?: number };
    heir.v8FastModeProbe = 1;
  }
}
