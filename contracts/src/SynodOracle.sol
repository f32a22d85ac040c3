// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What a contract implements to receive Synod answers: called once per request, when the
/// request is fulfilled (`fulfilled` true: `answer` is the verdict's winning output) or refunded
/// (`fulfilled` false: `answer` is the reason code, digests zero). A reverting or out-of-gas callback
/// does not undo the settlement; the oracle records `callbackOk = false` in its event instead. The
/// settlement keeps back the gas for its own event before the call, so whatever the callback does (even
/// using all of `callbackGasLimit` when mined, and little when the gas was estimated), it never reverts
/// the settlement.
interface ISynodConsumer {
    function onLLMResult(
        uint256 requestNo,
        bool fulfilled,
        string calldata answer,
        bytes32 verdictDigest,
        bytes32 transcriptRoot
    ) external;
}

/// @title SynodOracle: smart contracts ask the Synod network with `callLLM`.
/// @notice A request is an event (`LLMRequested`) that Synod's chain watcher turns into a network
/// request whose id is `<chainId>:<this contract>:<requestNo>`. The watcher's bridge account settles it
/// exactly once: `fulfill` with the verdict's winning output, its digest and the transcript's Merkle
/// root (anyone can re-verify the transcript at the relay's public `/v1/verify/<id>`), or `refund` with
/// a reason. After the deadline anyone may refund a request still pending. Every settlement names the
/// question it settles (`questionHash`, emitted in `LLMRequested`): a reorg can hand a request number to
/// another question, and a settlement signed for the first one must never settle the second. Fees are
/// paid out by withdrawal (`withdraw`), never pushed. A consumer contract's callback always gets its full
/// `callbackGasLimit`: a settlement sent with less gas reverts (`InsufficientGasForCallback`).
contract SynodOracle {
    enum Status {
        None,
        Pending,
        Fulfilled,
        Refunded
    }

    struct Request {
        address requester;
        uint96 fee;
        uint64 deadline;
        Status status;
        /// `questionHashOf` the request: what a settlement must name to settle it.
        bytes32 questionHash;
    }

    /// Bounds mirrored from the protocol (shared/src/packets): a request outside them is refused here
    /// rather than refunded later.
    uint256 public constant MAX_PROMPT_BYTES = 32_768;
    uint256 public constant MAX_MODELS = 16;
    uint256 public constant MAX_MODEL_ID_BYTES = 128;
    uint32 public constant MAX_TOKENS = 4096;
    uint16 public constant MAX_QUORUM = 64;
    uint16 public constant MAX_TEMPERATURE_CENTI = 200;
    /// A refund's reason is a stable code (`NO_CONSENSUS`, `QUEUE_TIMEOUT`, …), never longer than this.
    /// Bounded because after the deadline anyone may refund and so chooses the reason: a long one would
    /// make every consumer that emits or stores it run out of callback gas, its refund never seen.
    uint256 public constant MAX_REASON_BYTES = 64;
    /// Deployment bounds. A settlement carries the callback's gas and up to about 3M more (a 64 KiB
    /// answer's calldata, event and encoding), and must fit one transaction on any chain (EIP-7825 caps one
    /// at 2^24 gas): with a larger `callbackGasLimit` no settlement of a contract's request could ever be
    /// mined, and its fee would be locked for good. A deadline of a minute to a year: shorter, anyone could
    /// refund a request before it is answered; longer, a fee waits that long for a refund.
    uint32 public constant MAX_CALLBACK_GAS_LIMIT = 10_000_000;
    uint64 public constant MIN_TIMEOUT = 60;
    uint64 public constant MAX_TIMEOUT = 365 days;

    /// The deployer. It alone may change the bridge (`setBridge`), at any time and with no delay; there is
    /// no way to transfer or renounce ownership.
    address public owner;
    /// The chain watcher's account: the only one that may fulfill, and that may refund at any time. Never
    /// the zero address (`BadConfig`).
    address public bridge;
    uint256 public minFee;
    /// Seconds from `callLLM` until anyone may refund a request that is still pending.
    uint64 public timeout;
    /// Gas given to a consumer's `onLLMResult`.
    uint32 public callbackGasLimit;
    /// Gas the call itself costs beyond what it forwards (cold account access, memory, the try frame).
    uint256 private constant CALLBACK_CALL_OVERHEAD = 10_000;

    uint256 public nextRequestNo = 1;
    mapping(uint256 requestNo => Request) public requests;
    /// Fees earned by the bridge and fees refunded to requesters, waiting for `withdraw`.
    mapping(address account => uint256 wei_) public balances;

    event LLMRequested(
        uint256 indexed requestNo,
        address indexed requester,
        string prompt,
        string[] acceptedModels,
        uint32 maxTokens,
        uint16 temperatureCenti,
        uint16 quorum,
        uint256 fee,
        uint64 deadline,
        bytes32 questionHash
    );
    /// Settlements name the requester (indexed), so a consumer's indexer filters its own without joining
    /// `LLMRequested`. `callbackOk` is true when no callback failed: also when the requester has no code
    /// and none ran.
    event LLMFulfilled(
        uint256 indexed requestNo,
        address indexed requester,
        string answer,
        bytes32 verdictDigest,
        bytes32 transcriptRoot,
        bool callbackOk
    );
    event LLMRefunded(uint256 indexed requestNo, address indexed requester, string reason, bool callbackOk);
    /// The bridge account, as set by the constructor and by every `setBridge`.
    event BridgeChanged(address indexed bridge);
    /// `account` was paid out `amount` wei of its balance (`withdraw`).
    event Withdrawn(address indexed account, uint256 amount);

    error NotOwner();
    error NotBridge();
    error NotPending(uint256 requestNo);
    error NotExpired(uint256 requestNo, uint64 deadline);
    error FeeTooLow(uint256 required);
    error FeeTooHigh();
    error BadPrompt();
    error BadModels();
    /// `maxTokens` is 0 or above `max` (`MAX_TOKENS`).
    error BadMaxTokens(uint32 max);
    /// `temperatureCenti` is above `max` (`MAX_TEMPERATURE_CENTI`).
    error BadTemperature(uint16 max);
    /// `quorum` is 0 or above `max` (`MAX_QUORUM`).
    error BadQuorum(uint16 max);
    error BadReason();
    error NothingToWithdraw();
    error TransferFailed();
    error InsufficientGasForCallback(uint256 required);
    /// A setting out of its bounds: a constructor argument (`MAX_CALLBACK_GAS_LIMIT`, `MIN_TIMEOUT`,
    /// `MAX_TIMEOUT`), or a bridge that is the zero address (constructor or `setBridge`): nobody could
    /// fulfil, and requests would wait for their deadline.
    error BadConfig();
    /// The settlement names another question than the one pending under `requestNo` (`questionHash`).
    error QuestionMismatch(uint256 requestNo, bytes32 questionHash);

    constructor(address bridge_, uint256 minFee_, uint64 timeout_, uint32 callbackGasLimit_) {
        if (
            bridge_ == address(0) || callbackGasLimit_ > MAX_CALLBACK_GAS_LIMIT || timeout_ < MIN_TIMEOUT
                || timeout_ > MAX_TIMEOUT
        ) {
            revert BadConfig();
        }
        owner = msg.sender;
        bridge = bridge_;
        minFee = minFee_;
        timeout = timeout_;
        callbackGasLimit = callbackGasLimit_;
        emit BridgeChanged(bridge_);
    }

    /// @notice Change the bridge account (owner only; effective at once, no delay). The old bridge can no
    /// longer fulfil, nor refund before a deadline; what it earned stays its own to `withdraw`.
    function setBridge(address bridge_) external {
        if (msg.sender != owner) revert NotOwner();
        if (bridge_ == address(0)) revert BadConfig();
        bridge = bridge_;
        emit BridgeChanged(bridge_);
    }

    /// @notice Ask the network. `temperatureCenti` is the sampling temperature in hundredths (0 = greedy).
    /// @return requestNo The number the answer will carry (`onLLMResult`, `LLMFulfilled`).
    function callLLM(
        string calldata prompt,
        string[] calldata acceptedModels,
        uint32 maxTokens,
        uint16 temperatureCenti,
        uint16 quorum
    ) external payable returns (uint256 requestNo) {
        if (msg.value < minFee) revert FeeTooLow(minFee);
        if (msg.value > type(uint96).max) revert FeeTooHigh();
        uint256 promptBytes = bytes(prompt).length;
        if (promptBytes == 0 || promptBytes > MAX_PROMPT_BYTES) revert BadPrompt();
        if (acceptedModels.length == 0 || acceptedModels.length > MAX_MODELS) revert BadModels();
        for (uint256 i = 0; i < acceptedModels.length; i++) {
            uint256 n = bytes(acceptedModels[i]).length;
            if (n == 0 || n > MAX_MODEL_ID_BYTES) revert BadModels();
        }
        if (maxTokens == 0 || maxTokens > MAX_TOKENS) revert BadMaxTokens(MAX_TOKENS);
        if (temperatureCenti > MAX_TEMPERATURE_CENTI) revert BadTemperature(MAX_TEMPERATURE_CENTI);
        if (quorum == 0 || quorum > MAX_QUORUM) revert BadQuorum(MAX_QUORUM);

        requestNo = nextRequestNo++;
        uint64 deadline = uint64(block.timestamp) + timeout;
        bytes32 question = questionHashOf(msg.sender, prompt, acceptedModels, maxTokens, temperatureCenti, quorum);
        requests[requestNo] = Request({
            requester: msg.sender,
            fee: uint96(msg.value),
            deadline: deadline,
            status: Status.Pending,
            questionHash: question
        });
        emit LLMRequested(
            requestNo,
            msg.sender,
            prompt,
            acceptedModels,
            maxTokens,
            temperatureCenti,
            quorum,
            msg.value,
            deadline,
            question
        );
    }

    /// @notice What a request asks, and who asks it, in one hash: a settlement must name it. The fee and
    /// the deadline are left out: the same transaction mined again in another block (a reorg) asks the
    /// same question at another block time, and its settlement still holds.
    function questionHashOf(
        address requester,
        string calldata prompt,
        string[] calldata acceptedModels,
        uint32 maxTokens,
        uint16 temperatureCenti,
        uint16 quorum
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(requester, prompt, acceptedModels, maxTokens, temperatureCenti, quorum));
    }

    /// @notice Settle a request with the network's verdict (bridge only, once). `questionHash` is the
    /// one in the request's `LLMRequested` event: after a reorg that gave the number to another question
    /// the call reverts (`QuestionMismatch`) rather than answer it with this answer.
    function fulfill(
        uint256 requestNo,
        bytes32 questionHash,
        string calldata answer,
        bytes32 verdictDigest,
        bytes32 transcriptRoot
    ) external {
        if (msg.sender != bridge) revert NotBridge();
        Request storage r = _pending(requestNo, questionHash);
        r.status = Status.Fulfilled;
        balances[bridge] += r.fee;
        bool ok = _callback(r.requester, requestNo, true, answer, verdictDigest, transcriptRoot);
        emit LLMFulfilled(requestNo, r.requester, answer, verdictDigest, transcriptRoot, ok);
    }

    /// @notice Return a request's fee to its requester (the bridge at any time, anyone after the deadline;
    /// once). `questionHash` as in `fulfill` (`requests(n)` holds it too): a refund signed for one question
    /// never settles another that a reorg put under the same number. `reason` is a stable code of at most
    /// `MAX_REASON_BYTES` bytes (`BadReason` otherwise).
    function refund(uint256 requestNo, bytes32 questionHash, string calldata reason) external {
        if (bytes(reason).length > MAX_REASON_BYTES) revert BadReason();
        Request storage r = _pending(requestNo, questionHash);
        if (msg.sender != bridge && block.timestamp <= r.deadline) revert NotExpired(requestNo, r.deadline);
        r.status = Status.Refunded;
        balances[r.requester] += r.fee;
        bool ok = _callback(r.requester, requestNo, false, reason, bytes32(0), bytes32(0));
        emit LLMRefunded(requestNo, r.requester, reason, ok);
    }

    /// @notice Pay out the caller's balance (earned fees, or refunds).
    function withdraw() external {
        uint256 amount = balances[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        balances[msg.sender] = 0;
        (bool sent,) = payable(msg.sender).call{value: amount}("");
        if (!sent) revert TransferFailed();
        emit Withdrawn(msg.sender, amount);
    }

    /// The request `requestNo` if it is pending and asks `questionHash`; reverts otherwise.
    function _pending(uint256 requestNo, bytes32 questionHash) private view returns (Request storage r) {
        r = requests[requestNo];
        if (r.status != Status.Pending) revert NotPending(requestNo);
        if (r.questionHash != questionHash) revert QuestionMismatch(requestNo, r.questionHash);
    }

    /// Gas a settlement spends on its answer (or reason) of `length` bytes besides the callback itself:
    /// ABI-encoding it into memory for the call and again for the event (3 a word each, and memory growth
    /// up to twice its words), and the event's log (375 for the log and each of its 3 topics, 8 a byte of
    /// data, its words padded), with a margin for the rest of the function.
    function _settlementGas(uint256 length) private pure returns (uint256) {
        uint256 w = (length + 31) / 32 + 16;
        return 4 * 375 + w * (3 + 3 + 8 * 32) + (2 * w) * (2 * w) / 512 + 5_000;
    }

    function _callback(
        address requester,
        uint256 requestNo,
        bool fulfilled,
        string calldata answer,
        bytes32 verdictDigest,
        bytes32 transcriptRoot
    ) private returns (bool) {
        if (requester.code.length == 0) return true;
        // The EVM forwards at most 63/64 of the gas left: with less than this the consumer would get less
        // than `callbackGasLimit`, fail, and lose its answer for good. Revert instead, so a caller (and gas
        // estimation) must supply enough. Held back too: what encoding the answer for the call and the
        // settlement's event after it cost, so a callback that uses all its gas when mined (and little
        // when the gas was estimated) can never make the settlement itself run out of gas.
        uint256 required = uint256(callbackGasLimit) * 64 / 63 + CALLBACK_CALL_OVERHEAD
            + _settlementGas(bytes(answer).length);
        if (gasleft() < required) revert InsufficientGasForCallback(required);
        try ISynodConsumer(requester).onLLMResult{gas: callbackGasLimit}(
            requestNo, fulfilled, answer, verdictDigest, transcriptRoot
        ) {
            return true;
        } catch {
            return false;
        }
    }
}
