// What a refusal says beyond its code and message: the google.rpc.BadRequest field violations
// an INVALID_ARGUMENT carries (one per problem, e.g. "arguments_json.to" of an edited tool call).
import { ConnectError } from '@connectrpc/connect';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

export interface FieldViolation {
  /** The request field at fault, e.g. "arguments_json.amount". */
  field: string;
  /** What is wrong with it. */
  description: string;
}

const BAD_REQUEST = 'google.rpc.BadRequest';

/** The field violations of an error's BadRequest details, in the order the service sent them. */
export function fieldViolations(error: unknown): FieldViolation[] {
  const violations: FieldViolation[] = [];
  for (const detail of ConnectError.from(error).details) {
    if (!('type' in detail) || detail.type !== BAD_REQUEST) continue;
    for (const bytes of lengthDelimited(detail.value, 1)) {
      const [field = '', description = ''] = [1, 2].map((number) => {
        const [value] = lengthDelimited(bytes, number);
        return value === undefined ? undefined : new TextDecoder().decode(value);
      });
      violations.push({ field, description });
    }
  }
  return violations;
}

/** Every length-delimited value of field `number` in an encoded message. */
function lengthDelimited(message: Uint8Array, number: number): Uint8Array[] {
  const values: Uint8Array[] = [];
  const reader = new BinaryReader(message);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === number && wireType === WireType.LengthDelimited) values.push(reader.bytes());
    else reader.skip(wireType, field);
  }
  return values;
}
