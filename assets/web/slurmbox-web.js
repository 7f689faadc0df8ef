// slurmbox's dashboard: what nginx asks of njs. A researcher's token travels in the
// X-SLURM-USER-TOKEN header; nginx keys its few seconds of cached answers by a hash of
// it, so that no token is written anywhere in the container.
import crypto from 'crypto';

function tokenKey(r) {
    const token = r.headersIn['X-SLURM-USER-TOKEN'] || '';
    return crypto.createHash('sha256').update(token).digest('hex');
}

export default { tokenKey };
