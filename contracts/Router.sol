// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20Minimal, Pair} from "./Pair.sol";

/// @title Router
/// @notice The user-facing entry point: moves the caller's tokens into a registered Pair and
///         enforces the caller's protections (minimum amounts, deadline) that the Pair itself
///         does not know about. There is no factory: the owner registers pairs (one per token
///         pair, first registration wins), which is all a test venue needs.
contract Router {
    address public immutable owner;
    /// @dev Keyed both ways round: getPair[a][b] == getPair[b][a].
    mapping(address => mapping(address => address)) public getPair;

    event PairRegistered(address indexed token0, address indexed token1, address pair);

    modifier ensure(uint256 deadline) {
        require(block.timestamp <= deadline, "Router: expired");
        _;
    }

    constructor() {
        owner = msg.sender;
    }

    function registerPair(address pair) external {
        require(msg.sender == owner, "Router: caller is not the owner");
        address t0 = Pair(pair).token0();
        address t1 = Pair(pair).token1();
        require(getPair[t0][t1] == address(0), "Router: pair exists");
        getPair[t0][t1] = pair;
        getPair[t1][t0] = pair;
        emit PairRegistered(t0, t1, pair);
    }

    /// @notice Exact-input output for one hop; the same integer math as the Pair's K check.
    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut, uint256 feeBps)
        public
        pure
        returns (uint256)
    {
        require(amountIn > 0, "Router: insufficient input amount");
        require(reserveIn > 0 && reserveOut > 0, "Router: insufficient liquidity");
        uint256 amountInWithFee = amountIn * (10_000 - feeBps);
        return (amountInWithFee * reserveOut) / (reserveIn * 10_000 + amountInWithFee);
    }

    /// @notice Quote for `amountIn` of `tokenIn` through the registered pair, at current reserves.
    function quoteExactIn(uint256 amountIn, address tokenIn, address tokenOut)
        public
        view
        returns (uint256)
    {
        (Pair pair, uint256 reserveIn, uint256 reserveOut) = _pairAndReserves(tokenIn, tokenOut);
        return getAmountOut(amountIn, reserveIn, reserveOut, pair.feeBps());
    }

    /// @notice Uniswap-V2-compatible signature; `path` must be exactly [tokenIn, tokenOut].
    function swapExactTokensForTokens(
        uint256 amountIn,
        uint256 amountOutMin,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256[] memory amounts) {
        require(path.length == 2, "Router: path must have exactly 2 tokens");
        (Pair pair, uint256 reserveIn, uint256 reserveOut) = _pairAndReserves(path[0], path[1]);
        uint256 amountOut = getAmountOut(amountIn, reserveIn, reserveOut, pair.feeBps());
        require(amountOut >= amountOutMin, "Router: output below amountOutMin");
        _pull(path[0], msg.sender, address(pair), amountIn);
        (uint256 out0, uint256 out1) =
            path[0] == pair.token0() ? (uint256(0), amountOut) : (amountOut, uint256(0));
        pair.swap(out0, out1, to);
        amounts = new uint256[](2);
        amounts[0] = amountIn;
        amounts[1] = amountOut;
    }

    function addLiquidity(
        address tokenA,
        address tokenB,
        uint256 amountADesired,
        uint256 amountBDesired,
        uint256 amountAMin,
        uint256 amountBMin,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256 amountA, uint256 amountB, uint256 liquidity) {
        (amountA, amountB) =
            _liquidityAmounts(tokenA, tokenB, amountADesired, amountBDesired, amountAMin, amountBMin);
        address pair = getPair[tokenA][tokenB];
        _pull(tokenA, msg.sender, pair, amountA);
        _pull(tokenB, msg.sender, pair, amountB);
        liquidity = Pair(pair).mint(to);
    }

    /// @notice The caller must have approved the Router for `liquidity` LP tokens of the pair.
    function removeLiquidity(
        address tokenA,
        address tokenB,
        uint256 liquidity,
        uint256 amountAMin,
        uint256 amountBMin,
        address to,
        uint256 deadline
    ) external ensure(deadline) returns (uint256 amountA, uint256 amountB) {
        address pair = getPair[tokenA][tokenB];
        require(pair != address(0), "Router: no pair");
        _pull(pair, msg.sender, pair, liquidity);
        (uint256 amount0, uint256 amount1) = Pair(pair).burn(to);
        (amountA, amountB) = tokenA == Pair(pair).token0() ? (amount0, amount1) : (amount1, amount0);
        require(amountA >= amountAMin, "Router: insufficient A amount");
        require(amountB >= amountBMin, "Router: insufficient B amount");
    }

    /// @dev Uniswap V2's optimal-ratio logic: deposit at the pool's current price.
    function _liquidityAmounts(
        address tokenA,
        address tokenB,
        uint256 amountADesired,
        uint256 amountBDesired,
        uint256 amountAMin,
        uint256 amountBMin
    ) private view returns (uint256 amountA, uint256 amountB) {
        (, uint256 reserveA, uint256 reserveB) = _pairAndReserves(tokenA, tokenB);
        if (reserveA == 0 && reserveB == 0) {
            return (amountADesired, amountBDesired);
        }
        uint256 amountBOptimal = (amountADesired * reserveB) / reserveA;
        if (amountBOptimal <= amountBDesired) {
            require(amountBOptimal >= amountBMin, "Router: insufficient B amount");
            return (amountADesired, amountBOptimal);
        }
        uint256 amountAOptimal = (amountBDesired * reserveA) / reserveB;
        require(amountAOptimal >= amountAMin, "Router: insufficient A amount");
        return (amountAOptimal, amountBDesired);
    }

    function _pairAndReserves(address tokenIn, address tokenOut)
        private
        view
        returns (Pair pair, uint256 reserveIn, uint256 reserveOut)
    {
        address p = getPair[tokenIn][tokenOut];
        require(p != address(0), "Router: no pair");
        pair = Pair(p);
        (uint112 r0, uint112 r1,) = pair.getReserves();
        (reserveIn, reserveOut) = tokenIn == pair.token0() ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
    }

    /// @dev A plain call, so a token's own revert reason (e.g. missing allowance) reaches the caller.
    function _pull(address token, address from, address to, uint256 amount) private {
        require(IERC20Minimal(token).transferFrom(from, to, amount), "Router: transferFrom failed");
    }
}
