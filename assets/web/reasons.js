// Why a job waits, in one sentence each: Slurm's reason codes (squeue's NODELIST(REASON),
// `state_reason` in the API) as a researcher would ask about them.

const REASONS = {
  None: 'Slurm has not looked at it yet; it will at its next scheduling pass.',
  Priority: 'Jobs with a higher priority are ahead of it; it starts after them, or earlier if it fits into a gap (backfill).',
  Resources: 'It is next in line and waits for enough free CPUs, memory or GPUs on the nodes it may use.',
  Dependency: 'It waits for the job it depends on (--dependency) to reach the state it asked for.',
  DependencyNeverSatisfied: 'The job it depends on ended in a way that can never satisfy the dependency: it will not start; cancel it.',
  BeginTime: 'It asked to start later (--begin), and that time has not come yet.',
  JobHeldUser: 'Its owner held it (Hold, or scontrol hold): it starts only after Release (scontrol release).',
  JobHeldAdmin: 'An administrator held it: only an administrator can release it.',
  ReqNodeNotAvail: 'A node it needs is down, drained or reserved; it waits until that node is available again.',
  NodeDown: 'A node it needs is down.',
  PartitionDown: 'Its partition is down: no job in it starts until an administrator brings it up.',
  PartitionInactive: 'Its partition is inactive: it takes no new work for now.',
  PartitionTimeLimit: 'Its time limit is longer than its partition allows: it will not start unless you ask for less time.',
  PartitionNodeLimit: 'It asks for more nodes than its partition allows a job.',
  PartitionConfig: 'It asks for something its partition does not offer (CPUs, memory or nodes per job).',
  BadConstraints: 'No node has everything it asks for at once: it cannot start as it is.',
  Reservation: 'It waits for its reservation to begin.',
  Licenses: 'It waits for the licenses it asked for to be free.',
  Cleaning: 'Slurm is still cleaning up after an earlier run of it before it can start again.',
  Prolog: 'Its nodes are running the prolog; it starts right after.',
  JobArrayTaskLimit: 'Its array already runs as many tasks at once as it allows (the %N of --array).',
  'launch failed requeued held': 'Slurm could not start it, put it back in the queue and held it: ask the administrator.',
  InvalidAccount: 'Its account is not valid (or not yours): cancel it and submit with an account you belong to.',
  InvalidQOS: 'Its QOS is not valid for its account: cancel it and submit with a QOS you may use.',
  AssocGrpCpuLimit: "All its account's running jobs together already use the CPUs the account is allowed (GrpTRES cpu).",
  AssocGrpMemLimit: "All its account's running jobs together already use the memory the account is allowed (GrpTRES mem).",
  AssocGrpNodeLimit: "All its account's running jobs together already use the nodes the account is allowed (GrpTRES node).",
  AssocGrpGRES: "All its account's running jobs together already use the GPUs or other GRES the account is allowed.",
  AssocGrpJobsLimit: 'Its account already runs as many jobs as it is allowed at once (GrpJobs).',
  AssocGrpSubmitJobsLimit: 'Its account already has as many jobs queued as it is allowed (GrpSubmitJobs).',
  AssocGrpCPUMinutesLimit: 'Its account has used up the CPU-minutes it is allowed (GrpTRESMins cpu).',
  AssocGrpBillingMinutes: 'Its account has used up the billing minutes it is allowed (GrpTRESMins billing).',
  AssocMaxJobsLimit: 'You already run as many jobs as your association allows at once (MaxJobs).',
  AssocMaxWallDurationPerJobLimit: 'Its time limit is longer than its account allows a job (MaxWall).',
  AssocMaxCpuPerJobLimit: 'It asks for more CPUs than its account allows a job (MaxTRES cpu).',
  AssocMaxNodePerJobLimit: 'It asks for more nodes than its account allows a job (MaxTRES node).',
  QOSMaxJobsPerUserLimit: 'You already run as many jobs as its QOS allows one user at once (MaxJobsPerUser).',
  QOSMaxSubmitJobPerUserLimit: 'You already have as many jobs queued as its QOS allows one user (MaxSubmitJobsPerUser).',
  QOSMaxCpuPerUserLimit: 'Your running jobs already use the CPUs its QOS allows one user (MaxTRESPerUser cpu).',
  QOSMaxMemoryPerUser: 'Your running jobs already use the memory its QOS allows one user (MaxTRESPerUser mem).',
  QOSMaxGRESPerUser: 'Your running jobs already use the GPUs its QOS allows one user (MaxTRESPerUser gres).',
  QOSMaxWallDurationPerJobLimit: 'Its time limit is longer than its QOS allows a job (MaxWall).',
  QOSMaxCpuPerJobLimit: 'It asks for more CPUs than its QOS allows a job (MaxTRESPerJob cpu).',
  QOSGrpCpuLimit: 'All jobs of its QOS together already use the CPUs the QOS is allowed (GrpTRES cpu).',
  QOSGrpMemLimit: 'All jobs of its QOS together already use the memory the QOS is allowed (GrpTRES mem).',
  QOSGrpNodeLimit: 'All jobs of its QOS together already use the nodes the QOS is allowed (GrpTRES node).',
  QOSGrpGRES: 'All jobs of its QOS together already use the GPUs the QOS is allowed (GrpTRES gres).',
  QOSGrpJobsLimit: 'Its QOS already runs as many jobs as it is allowed at once (GrpJobs).',
  QOSJobLimit: 'Its QOS already runs as many jobs as it is allowed.',
  QOSResourceLimit: 'Its QOS has no more of the resources it asks for right now.',
  QOSTimeLimit: 'Its time limit is longer than its QOS allows.',
  AssociationJobLimit: 'Its account already runs as many jobs as it is allowed.',
  AssociationResourceLimit: 'Its account has no more of the resources it asks for right now.',
  AssociationTimeLimit: 'Its time limit is longer than its account allows.',
  FrontEndDown: 'No front end node is available to launch it.',
  SystemFailure: 'Slurm, its file system or its network failed; ask the administrator.',
  BurstBufferResources: 'It waits for burst buffer space.',
  MaxRequeueExceeded: 'It was requeued more times than allowed and is held: ask the administrator.',
  OutOfMemory: 'It ran out of memory; it will not start as it is.',
};

/** The sentence for a reason code, or one by its family for codes not listed. */
export function explainReason(reason) {
  if (!reason) return '';
  if (REASONS[reason]) return REASONS[reason];
  if (/^AssocGrp/.test(reason)) return `A limit on all its account's jobs together holds it (${reason}).`;
  if (/^AssocMax/.test(reason)) return `A per-job or per-user limit of its account holds it (${reason}).`;
  if (/^QOSGrp/.test(reason)) return `A limit on all jobs of its QOS together holds it (${reason}).`;
  if (/^QOSMax/.test(reason)) return `A per-job or per-user limit of its QOS holds it (${reason}).`;
  return `Slurm says "${reason}".`;
}
